"""Every tree's leaf found from the outcomes of its splits, for many rows at once.

The batch path of :mod:`models.tree_paths`: for a booster whose trees have at
most :data:`MAX_LOOKUP_SPLITS` splits, each distinct split is decided once for
all rows, each tree's code of outcomes is built with a few vectorised passes,
and its leaf (its share of the group's row of attributions) is looked up in a
table: a few hundred passes over the rows instead of a walk of every tree for
every row. The leaves are those scikit-learn's walk of raw values reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Most splits a tree may have for its leaves to be looked up from their outcomes (a
#: table of 2 ** splits leaves); a booster with a larger tree is walked by scikit-learn.
MAX_LOOKUP_SPLITS = 12


@dataclass(frozen=True, slots=True)
class LeafLookup:
    """Every tree's leaf found from the outcomes of its splits, for many rows at once.

    Split ``u`` sends a row left where ``x[feature[u]] <= threshold[u]``, or
    where the value is missing and ``missing_left[u]``: the comparison
    scikit-learn's walk of raw values makes, so the same leaves are reached.
    A split shared by several trees (same feature, threshold and side for
    missing values) is decided once. Bit ``k`` of tree ``t``'s code is the
    outcome of its split ``splits[t][k]`` (1: left), and ``rows[t][code]`` is
    the tree's share of its group's row in ``leaf_table``: a group's row is
    the sum of its trees' shares (the first one's includes the group's start),
    the row its finder's leaf holds. ``group_sizes`` cuts the trees, in
    order, into the groups of ``leaf_finders``.
    """

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    splits: tuple[np.ndarray, ...]
    rows: tuple[np.ndarray, ...]
    group_sizes: tuple[int, ...]
    #: The codes' type: wide enough for the largest tree's splits.
    code_dtype: type[np.unsignedinteger]


def make_leaf_lookup(
    trees: list[tuple[np.ndarray, np.ndarray, dict[int, int]]], groups: list[list[int]]
) -> LeafLookup | None:
    """Return the leaf lookup of ``trees`` (nodes, leaf table, leaves' rows) in ``groups``.

    None when a tree has more than :data:`MAX_LOOKUP_SPLITS` splits.
    """
    n_splits = [int((~nodes["is_leaf"].astype(bool)).sum()) for nodes, _, _ in trees]
    if max(n_splits) > MAX_LOOKUP_SPLITS:
        return None
    distinct: dict[tuple[int, float, bool], int] = {}
    splits, rows = [], []
    start = 0
    for group in groups:
        remaining = int(np.prod([len(trees[t][1]) for t in group]))
        for position, t in enumerate(group):
            nodes, table, row_of = trees[t]
            remaining //= len(table)
            inner = np.flatnonzero(~nodes["is_leaf"].astype(bool))
            splits.append(
                np.array(
                    [
                        distinct.setdefault(
                            (
                                int(nodes["feature_idx"][node]),
                                float(nodes["num_threshold"][node]),
                                bool(nodes["missing_go_to_left"][node]),
                            ),
                            len(distinct),
                        )
                        for node in inner
                    ],
                    dtype=np.intp,
                )
            )
            leaf = _leaf_of_codes(nodes, inner)
            share = np.array([row_of[int(node)] for node in leaf], dtype=np.int64) * remaining
            rows.append((share + (start if position == 0 else 0)).astype(np.int32))
        start += int(np.prod([len(trees[t][1]) for t in group]))
    keys = list(distinct)
    return LeafLookup(
        feature=np.array([f for f, _, _ in keys], dtype=np.intp),
        threshold=np.array([v for _, v, _ in keys], dtype=np.float64),
        missing_left=np.array([m for _, _, m in keys], dtype=bool),
        splits=tuple(splits),
        rows=tuple(rows),
        group_sizes=tuple(len(group) for group in groups),
        code_dtype=np.uint8 if max(n_splits) <= 8 else np.uint16,
    )


def _leaf_of_codes(nodes: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Return the leaf reached for every code of outcomes of a tree's splits ``inner``.

    Bit ``k`` of a code is 1 where split ``inner[k]`` sends the row left.
    """
    bit = {int(node): k for k, node in enumerate(inner)}
    codes = np.arange(1 << inner.size)
    node = np.zeros(codes.size, dtype=np.intp)
    for _ in range(inner.size):
        at_split = ~nodes["is_leaf"][node].astype(bool)
        if not at_split.any():
            break
        position = np.array([bit.get(int(n), 0) for n in node])
        left = (codes >> position) & 1 == 1
        step = np.where(left, nodes["left"][node], nodes["right"][node]).astype(np.intp)
        node = np.where(at_split, step, node)
    return node


def look_up_leaves(lookup: LeafLookup, rows: np.ndarray, out: np.ndarray) -> None:
    """Write each row's leaf combination of every group (its row of ``leaf_table``) into ``out``.

    Each distinct split is decided once for all rows, each tree's code built
    from its splits' outcomes and looked up: a few hundred vectorised passes
    over the rows instead of a walk of every tree for every row.
    """
    n_rows = rows.shape[0]
    columns = np.ascontiguousarray(rows.T)
    missing = np.isnan(columns)
    went_left = np.empty((lookup.feature.size, n_rows), dtype=np.uint8)
    for split, (feature, threshold, missing_left) in enumerate(
        zip(lookup.feature, lookup.threshold, lookup.missing_left, strict=True)
    ):
        # NaN <= threshold is False: a missing value goes right unless its split sends it left.
        left = np.less_equal(columns[feature], threshold, out=went_left[split].view(bool))
        if missing_left:
            np.logical_or(left, missing[feature], out=left)
    code = np.empty(n_rows, dtype=lookup.code_dtype)
    shifted = np.empty(n_rows, dtype=lookup.code_dtype)
    group_row = np.empty(n_rows, dtype=np.int32)
    share = np.empty(n_rows, dtype=np.int32)
    tree = 0
    for group, size in enumerate(lookup.group_sizes):
        group_row.fill(0)
        for _ in range(size):
            splits, shares = lookup.splits[tree], lookup.rows[tree]
            tree += 1
            if splits.size == 0:
                group_row += shares[0]  # a tree that is a single leaf
                continue
            np.copyto(code, went_left[splits[0]])
            for bit in range(1, splits.size):
                np.left_shift(went_left[splits[bit]], bit, out=shifted, dtype=code.dtype)
                np.bitwise_or(code, shifted, out=code)
            # Every code is a valid index (2 ** splits shares): "clip" only skips the check.
            np.take(shares, code, out=share, mode="clip")
            group_row += share
        out[:, group] = group_row
