"""Every tree's leaf found from the outcomes of its splits, for many rows at once.

The batch path of :mod:`models.tree_paths`: for a booster whose trees have at
most :data:`MAX_LOOKUP_SPLITS` splits, each distinct split is decided once for
all rows, every tree's code of outcomes is built with a few vectorised passes
over all trees at once, and its leaf (its share of the group's row of
attributions) is looked up in a table: a few dozen passes over the rows
instead of a walk of every tree for every row. The leaves are those
scikit-learn's walk of raw values reaches.
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

    The same, laid out for a few passes over all trees at once:
    ``split_matrix[t, k]`` is ``splits[t][k]``, or for a tree with fewer
    splits the index ``feature.size``, a split that never sends a row left
    (so its bits stay 0); ``share_table[(t << width) + code]`` is
    ``rows[t][code]``; ``group_bounds`` are the groups' first and past-last trees; and
    ``by_feature`` lists, for each feature split on, its splits and those
    of them that send missing values left.
    """

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    splits: tuple[np.ndarray, ...]
    rows: tuple[np.ndarray, ...]
    group_sizes: tuple[int, ...]
    #: The codes' type: wide enough for the largest tree's splits.
    code_dtype: type[np.unsignedinteger]
    split_matrix: np.ndarray
    share_table: np.ndarray
    width: int
    group_bounds: tuple[tuple[int, int], ...]
    by_feature: tuple[tuple[int, np.ndarray, np.ndarray], ...]


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
    feature = np.array([f for f, _, _ in keys], dtype=np.intp)
    missing_left = np.array([m for _, _, m in keys], dtype=bool)
    width = max(n_splits)
    split_matrix = np.full((len(splits), max(width, 1)), feature.size, dtype=np.intp)
    share_table = np.zeros((len(rows), 1 << width), dtype=np.int32)
    for t, (tree_splits, shares) in enumerate(zip(splits, rows, strict=True)):
        split_matrix[t, : tree_splits.size] = tree_splits
        share_table[t, : shares.size] = shares
    sizes = [len(group) for group in groups]
    return LeafLookup(
        feature=feature,
        threshold=np.array([v for _, v, _ in keys], dtype=np.float64),
        missing_left=missing_left,
        splits=tuple(splits),
        rows=tuple(rows),
        group_sizes=tuple(sizes),
        code_dtype=np.uint8 if width <= 8 else np.uint16,
        split_matrix=split_matrix,
        share_table=share_table.ravel(),
        width=width,
        group_bounds=tuple(
            (int(end) - size, int(end)) for size, end in zip(sizes, np.cumsum(sizes), strict=True)
        ),
        by_feature=tuple(
            (int(f), np.flatnonzero(feature == f), np.flatnonzero((feature == f) & missing_left))
            for f in np.unique(feature)
        ),
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


#: Up to this many rows, every tree's code is built for all trees at once (a few dozen
#: vectorised calls); from here on tree by tree, which moves fewer bytes per row.
ALL_TREES_MAX_ROWS = 2_048


def look_up_leaves(lookup: LeafLookup, rows: np.ndarray, out: np.ndarray) -> None:
    """Write each row's leaf combination of every group (its row of ``leaf_table``) into ``out``.

    Every split on a feature is decided at once for all rows; then each tree's
    code is built from its splits' outcomes a bit at a time and looked up. For a
    few rows that is done for all trees together (:func:`_all_trees`): one pass
    per split and per bit of every tree, some 3,000 calls for 133 trees, cost
    three times as much for a 1,000-row request. For many rows the calls cost
    little and tree by tree (:func:`_tree_by_tree`) moves fewer bytes.
    """
    n_rows = rows.shape[0]
    columns = np.ascontiguousarray(rows.T)
    # The last row stands for the padding split of the all-trees layout: never left.
    went_left = np.zeros((lookup.feature.size + 1, n_rows), dtype=np.uint8)
    left = went_left.view(bool)
    for feature, splits, missing_left in lookup.by_feature:
        column = columns[feature]
        # NaN <= threshold is False: a missing value goes right unless its split sends it left.
        left[splits] = column <= lookup.threshold[splits, None]
        if missing_left.size:
            left[missing_left] |= np.isnan(column)
    if n_rows <= ALL_TREES_MAX_ROWS:
        _all_trees(lookup, went_left, out)
    else:
        _tree_by_tree(lookup, went_left, out)


def _all_trees(lookup: LeafLookup, went_left: np.ndarray, out: np.ndarray) -> None:
    """Look up every tree's leaf from ``went_left`` for all trees at once; sum by group."""
    matrix = lookup.split_matrix
    code = went_left[matrix[:, 0]].astype(lookup.code_dtype)
    for bit in range(1, matrix.shape[1]):
        code |= np.left_shift(went_left[matrix[:, bit]], bit, dtype=lookup.code_dtype)
    where = code + (np.arange(matrix.shape[0], dtype=np.intp) << lookup.width)[:, None]
    # Every code is a valid index (2 ** width shares a tree): "clip" only skips the check.
    shares = np.take(lookup.share_table, where, mode="clip")
    # A sum per group: np.add.reduceat over the trees' axis was six times slower.
    for group, (begin, end) in enumerate(lookup.group_bounds):
        out[:, group] = shares[begin:end].sum(axis=0)


def _tree_by_tree(lookup: LeafLookup, went_left: np.ndarray, out: np.ndarray) -> None:
    """Look up every tree's leaf from ``went_left`` one tree at a time; sum by group."""
    n_rows = went_left.shape[1]
    code = np.empty(n_rows, dtype=lookup.code_dtype)
    shifted = np.empty(n_rows, dtype=lookup.code_dtype)
    group_row = np.empty(n_rows, dtype=np.int32)
    share = np.empty(n_rows, dtype=np.int32)
    for group, (begin, end) in enumerate(lookup.group_bounds):
        group_row.fill(0)
        for splits, shares in zip(lookup.splits[begin:end], lookup.rows[begin:end], strict=True):
            if splits.size == 0:
                group_row += shares[0]  # a tree that is a single leaf
                continue
            np.copyto(code, went_left[splits[0]])
            for bit in range(1, splits.size):
                np.left_shift(went_left[splits[bit]], bit, out=shifted, dtype=code.dtype)
                np.bitwise_or(code, shifted, out=code)
            np.take(shares, code, out=share, mode="clip")
            group_row += share
        out[:, group] = group_row
