"""Tree-path attributions of a gradient-boosted model, for one row or a large batch.

Walking each tree from root to leaf, the change in the node value at each
split is credited to the split's feature (Saabas). The attributions sum
exactly to the booster's log-odds score, but unlike Shapley values they
depend on the order of splits (so they are labelled approximate by
:mod:`models.attribution`). :func:`compile_trees` flattens a fitted
booster's trees once; :func:`tree_path_contributions` walks them with
arrays for a few rows, and for a batch finds every tree's leaf from its
splits' outcomes, decided for all rows at once (or, for trees too large
for that, with scikit-learn's compiled tree walk), and adds up precomputed
per-leaf attributions (optionally on several threads).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting._predictor import _predict_from_raw_data
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

from models.leaf_lookup import LeafLookup, look_up_leaves, make_leaf_lookup


@dataclass(frozen=True, slots=True)
class CompiledTrees:
    """Every tree of a fitted booster in flat arrays, walked all at once.

    Node ``i`` of the forest splits on ``feature[i]`` at ``threshold[i]``
    (missing values go left where ``missing_left[i]``); ``value[i]`` is the
    node's contribution to the log-odds so far (inner node values scaled by
    the learning rate, as the leaves already are).

    For a few rows, every node also has its two steps, ``steps[2 * i]`` (right)
    and ``steps[2 * i + 1]`` (left), with the change in value each credits to
    ``feature[i]`` (``step_values``); a leaf steps to itself and credits
    nothing, so all trees can take the same number of steps.

    For batches, the trees are taken in small groups: ``leaf_table`` has a
    row for every combination of leaves of a group's trees (the sum of their
    leaves' attributions), and each group has one finder: its trees grafted
    one under every leaf of the other, whose leaves hold their row of
    ``leaf_table``. One walk and one lookup then stand for a group of trees.
    """

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    steps: np.ndarray
    step_values: np.ndarray
    step_feature: np.ndarray
    roots: np.ndarray
    base_value: float
    depth: int
    leaf_table: np.ndarray
    leaf_finders: tuple[TreePredictor, ...]
    known_categories: tuple[np.ndarray, np.ndarray]
    #: The vectorised leaf lookup of a batch; None when a tree has too many splits for it.
    leaf_lookup: LeafLookup | None = None


#: From this many rows on, find leaves with scikit-learn's compiled tree walk
#: and add up precomputed per-leaf attributions; below it the array walk wins.
BATCH_ROWS = 200

#: Most trees per group, and most leaf combinations a group's table may hold: three
#: 8-leaf trees make 512 rows of attributions, and the whole table stays in cache.
TREES_PER_GROUP = 3
MAX_GROUP_ROWS = 512

#: Below this many row-node pairs, a walk of a few rows decides every split at once first.
_EVERY_NODE_LIMIT = 65_536

#: From this many rows (of a thread's share) on, leaves are looked up rather than walked:
#: the lookup's few dozen vectorised passes over all trees at once cost less than the
#: compiled walk of every group from a batch's first row on (a 1,000-row request: 1.2 ms
#: against 3.9 ms here, one thread).
LOOKUP_MIN_ROWS = BATCH_ROWS

#: Fewest rows per thread for leaves looked up on several threads: below it a second
#: thread only waits for the GIL (1,000 rows: 1.4 ms on one thread, 1.8 ms on two here).
LOOKUP_THREAD_MIN_ROWS = 4_096

#: Rows whose splits are decided together: their outcomes (a byte per distinct split)
#: and their rows' leaves stay in cache between the comparisons and the lookups.
LOOKUP_BLOCK_ROWS = 16_384


def _leaf_paths(
    nodes: np.ndarray, value: np.ndarray, n_features: int
) -> tuple[np.ndarray, dict[int, int]]:
    """Return each leaf's attribution vector and the leaf's row in that table."""
    table: list[np.ndarray] = []
    row_of: dict[int, int] = {}
    stack = [(0, np.zeros(n_features))]
    while stack:
        node, path = stack.pop()
        if nodes["is_leaf"][node]:
            row_of[node] = len(table)
            table.append(path)
            continue
        feature = int(nodes["feature_idx"][node])
        for child in (int(nodes["left"][node]), int(nodes["right"][node])):
            step = path.copy()
            step[feature] += value[child] - value[node]
            stack.append((child, step))
    return np.array(table), row_of


def compile_trees(booster: HistGradientBoostingClassifier) -> CompiledTrees:
    """Flatten a fitted binary ``HistGradientBoostingClassifier`` for fast attribution."""
    parts = [predictor.nodes for (predictor,) in booster._predictors]
    sizes = np.array([len(nodes) for nodes in parts])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    nodes = np.concatenate(parts)
    shift = np.repeat(offsets, sizes)
    is_leaf = nodes["is_leaf"].astype(bool)
    # Leaves are stored already shrunk by the learning rate, inner nodes not.
    value = np.where(is_leaf, nodes["value"], nodes["value"] * booster.learning_rate)
    n_features = int(booster.n_features_in_)
    leaf_tables = []
    for tree_nodes, tree_offset in zip(parts, offsets, strict=True):
        tree_value = value[tree_offset : tree_offset + len(tree_nodes)]
        leaf_tables.append((tree_nodes, *_leaf_paths(tree_nodes, tree_value, n_features)))
    tables, finders, start = [], [], 0
    groups = _groups([len(table) for _, table, _ in leaf_tables])
    for group in groups:
        combined = np.zeros((1, n_features))
        for t in group:
            combined = (combined[:, None, :] + leaf_tables[t][1][None, :, :]).reshape(
                -1, n_features
            )
        grafted = _graft([leaf_tables[t] for t in group], start)
        finders.append(TreePredictor(grafted, *_empty_bitsets(grafted)))
        tables.append(combined)
        start += len(combined)
    left = nodes["left"].astype(np.intp) + shift
    right = nodes["right"].astype(np.intp) + shift
    return CompiledTrees(
        feature=nodes["feature_idx"].astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        left=left,
        right=right,
        is_leaf=is_leaf,
        value=value,
        **_steps(left, right, is_leaf, value, nodes["feature_idx"].astype(np.intp)),
        roots=offsets.astype(np.intp),
        base_value=float(np.ravel(booster._baseline_prediction)[0] + value[offsets].sum()),
        depth=int(nodes["depth"].max()) + 1,
        leaf_table=np.concatenate(tables),
        leaf_finders=tuple(finders),
        known_categories=booster._bin_mapper.make_known_categories_bitsets(),
        leaf_lookup=make_leaf_lookup(leaf_tables, groups),
    )


def _steps(
    left: np.ndarray, right: np.ndarray, is_leaf: np.ndarray, value: np.ndarray, feature: np.ndarray
) -> dict[str, np.ndarray]:
    """Return each node's two steps (right, then left), their credited values, and feature."""
    node = np.arange(len(value))
    right = np.where(is_leaf, node, right)
    left = np.where(is_leaf, node, left)
    steps = np.column_stack([right, left]).ravel()
    # The same subtraction as a walk makes at each split, so the credits are equal bit for bit.
    step_values = (value[steps] - np.repeat(value, 2)).astype(np.float64)
    step_values[np.repeat(is_leaf, 2)] = 0.0
    return {
        "steps": steps,
        "step_values": step_values,
        "step_feature": np.where(is_leaf, 0, feature).astype(np.intp),
    }


def _graft(trees: list[tuple[np.ndarray, np.ndarray, dict[int, int]]], start: int) -> np.ndarray:
    """Return one tree that walks ``trees`` in turn, each next one hung under every leaf.

    ``trees`` holds each tree's nodes, leaf table and leaves' rows in it. The
    grafted tree's leaves hold ``start`` plus the row, in C order, of the
    combination of leaves reached: its row in the group's combined table.
    """
    first, _, first_rows = trees[0]
    merged = first.copy()
    remaining = int(np.prod([len(table) for _, table, _ in trees[1:]]))
    reached = {leaf: start + row * remaining for leaf, row in first_rows.items()}
    for leaf, value in reached.items():
        merged["value"][leaf] = value
    for nodes, table, rows in trees[1:]:
        remaining //= len(table)
        copies, roots, following = [], [], {}
        size = len(merged)
        inner = ~nodes["is_leaf"].astype(bool)
        for leaf, value in reached.items():
            # The copy's root takes the leaf's place; its other nodes go at the end.
            where = np.arange(len(nodes)) + size - 1
            where[0] = leaf
            copy = nodes.copy()
            copy["left"][inner] = where[nodes["left"][inner]]
            copy["right"][inner] = where[nodes["right"][inner]]
            for node, row in rows.items():
                copy["value"][node] = value + row * remaining
                following[int(where[node])] = copy["value"][node]
            roots.append((leaf, copy[0]))
            copies.append(copy[1:])
            size += len(nodes) - 1
        merged = np.concatenate([merged, *copies])
        for leaf, root in roots:
            merged[leaf] = root
        reached = following
    return merged


def _groups(leaf_counts: list[int]) -> list[list[int]]:
    """Cut consecutive trees into groups of at most TREES_PER_GROUP and MAX_GROUP_ROWS."""
    groups: list[list[int]] = []
    rows = 0
    for tree, count in enumerate(leaf_counts):
        if groups and len(groups[-1]) < TREES_PER_GROUP and rows * count <= MAX_GROUP_ROWS:
            groups[-1].append(tree)
            rows *= count
        else:
            groups.append([tree])
            rows = count
    return groups


def _empty_bitsets(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if nodes["is_categorical"].any():
        raise TypeError("tree-path attribution supports numeric splits only")
    empty = np.zeros((0, 8), dtype=np.uint32)
    return empty, empty


def tree_path_contributions(trees: CompiledTrees, X: np.ndarray, threads: int = 1) -> np.ndarray:
    """Return each feature's tree-path attribution for each row, shape ``(n_rows, n_features)``.

    ``trees.base_value + result.sum(axis=1)`` is the booster's raw log-odds.
    All trees advance one level per step, so a single row costs a few dozen
    vectorised operations however many trees there are. From
    :data:`BATCH_ROWS` rows on, ``threads`` threads share the rows.
    """
    n_rows, n_features = X.shape
    if n_rows >= BATCH_ROWS:
        return _threaded_batch_contributions(trees, X, threads)
    rows = np.ascontiguousarray(X, dtype=np.float64)
    n_trees, n_nodes = trees.roots.size, trees.value.size
    current = np.tile(trees.roots, n_rows)
    # Where each (row, tree)'s features sit in the flattened rows (one row: at 0).
    offset = np.repeat(np.arange(n_rows) * n_features, n_trees) if n_rows > 1 else 0
    every_node = n_rows * n_nodes <= _EVERY_NODE_LIMIT
    if every_node:
        # A few rows: every split of every tree decided at once, then only looked up.
        x = rows[:, trees.feature]
        go_left = ((x <= trees.threshold) | (trees.missing_left & np.isnan(x))).ravel()
        decided = np.repeat(np.arange(n_rows) * n_nodes, n_trees) if n_rows > 1 else 0
    totals = np.zeros(n_rows * n_features)
    # The deepest leaf is depth - 1 steps down; a tree at a leaf steps to itself, crediting 0.
    for _ in range(trees.depth - 1):
        if every_node:
            left = go_left[current + decided]
        else:
            value = rows.ravel()[trees.feature[current] + offset]
            left = (value <= trees.threshold[current]) | (
                trees.missing_left[current] & np.isnan(value)
            )
        step = 2 * current + left
        # Credited level by level, trees in order: the sums of the walk that skipped leaves.
        totals += np.bincount(
            trees.step_feature[current] + offset,
            weights=trees.step_values[step],
            minlength=totals.size,
        )
        current = trees.steps[step]
    return totals.reshape(n_rows, n_features)


#: Thread pools shared by every walk of a process, by size (see _pool).
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """Return the process's pool of ``threads`` walking threads, started on first use.

    Kept, not made per call: starting and joining the threads cost about as
    much as the half of a 1,000-row walk they saved a scoring service's request.
    """
    with _POOLS_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            pool = _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="tree-path")
        return pool


def _threaded_batch_contributions(trees: CompiledTrees, X: np.ndarray, threads: int) -> np.ndarray:
    """Split the rows between ``threads`` threads; the tree walks and sums release the GIL.

    A batch is split only when each thread gets enough rows (:data:`BATCH_ROWS`
    for the compiled walk, :data:`LOOKUP_THREAD_MIN_ROWS` for the lookup).

    Plain threads rather than scikit-learn's OpenMP: a parallel region per
    tree per chunk waits for the slowest thread each time, which on a busy
    machine cost several times the walk itself.
    """
    # The compiled walk gives the GIL up for a whole group of trees; the lookup's calls
    # mostly hold it on arrays this small, so its rows are shared only in large batches.
    share_from = BATCH_ROWS if trees.leaf_lookup is None else LOOKUP_THREAD_MIN_ROWS
    threads = min(threads, X.shape[0] // share_from)
    if threads <= 1:
        return _batch_contributions(trees, X)
    parts = np.array_split(np.ascontiguousarray(X, dtype=np.float64), threads)
    walks = _pool(threads).map(lambda part: _batch_contributions(trees, part), parts)
    return np.concatenate(list(walks))


def _batch_contributions(trees: CompiledTrees, X: np.ndarray) -> np.ndarray:
    """Find each row's leaf combination in every group, then sum their rows of attributions."""
    rows = np.ascontiguousarray(X, dtype=np.float64)
    n_rows, n_groups = rows.shape[0], len(trees.leaf_finders)
    if trees.leaf_lookup is not None and n_rows >= LOOKUP_MIN_ROWS:
        leaves = np.empty((n_rows, n_groups), dtype=np.int32)
        for begin in range(0, n_rows, LOOKUP_BLOCK_ROWS):
            block = slice(begin, begin + LOOKUP_BLOCK_ROWS)
            look_up_leaves(trees.leaf_lookup, rows[block], leaves[block])
    else:
        known, feature_map = trees.known_categories
        found = np.empty((n_groups, n_rows))
        for group, finder in enumerate(trees.leaf_finders):
            # Written into preallocated rows: no array per group to stack and copy.
            _leaf_values(finder, rows, known, feature_map, found[group])
        leaves = found.T.astype(np.int32)
    # Summed row by row, groups in order, as the walk of every finder did: equal bit for bit.
    indicator = sp.csr_matrix(
        (
            np.ones(leaves.size),
            leaves.ravel(),
            np.arange(0, leaves.size + 1, n_groups, dtype=np.int32),
        ),
        shape=(n_rows, trees.leaf_table.shape[0]),
    )
    return np.asarray(indicator @ trees.leaf_table)


def _leaf_values(
    finder: TreePredictor,
    rows: np.ndarray,
    known: np.ndarray,
    feature_map: np.ndarray,
    out: np.ndarray,
) -> None:
    """Write a finder's leaf values for ``rows`` into ``out``, on this thread only."""
    _predict_from_raw_data(
        finder.nodes, rows, finder.raw_left_cat_bitsets, known, feature_map, 1, out
    )
