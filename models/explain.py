"""Reasons for a score: per-feature contributions that sum to the model's log-odds.

For the scorecard the contributions are exact: each is the feature's bin
value. For gradient boosting they are path attributions (Saabas): walking
each tree from root to leaf, the change in the node value at each split is
credited to the split's feature. They also sum exactly to the log-odds, but
unlike Shapley values they depend on the order of splits, so they are
labelled ``"tree-path (approximate attribution)"``. For a blend
(:class:`models.average.LogOddsAverage`) they are the same weighted mean of
its members' contributions as its score is of theirs, so they too sum to its
log-odds exactly; the label names the members' methods.

The contributions sum to the model's log-odds score (its
``decision_function``). The served probability is the calibrated, monotone
function of that score, so a reason that raises the score never lowers the
probability.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting._predictor import _predict_from_raw_data
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.pipeline import Pipeline

from models.average import LogOddsAverage
from models.calibration import ScoreCalibratedClassifier
from models.encoding import AssessmentEncoder
from models.scorecard import BinnedLogisticScorecard

EXACT = "exact (additive scorecard)"
TREE_PATH = "tree-path (approximate attribution)"
AVERAGE = "weighted mean of the members' attributions"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Contributions of each feature to each row's log-odds score.

    ``base_value + contributions.sum(axis=1) == logit`` holds to float
    precision; ``probability`` is the calibrated probability of that score.
    """

    features: list[str]
    base_value: float
    contributions: np.ndarray
    logit: np.ndarray
    probability: np.ndarray
    method: str


@dataclass(frozen=True, slots=True)
class Reason:
    """One feature's part in one score."""

    feature: str
    value: object
    contribution: float

    @property
    def direction(self) -> str:
        """``"raises"`` or ``"lowers"`` the risk."""
        return "raises" if self.contribution > 0 else "lowers"


def risk_pipeline(model: ScoreCalibratedClassifier | Pipeline) -> Pipeline:
    """Return the fitted ``encode`` + ``model`` pipeline inside a calibrated model."""
    if isinstance(model, Pipeline):
        return model
    pipeline: Pipeline = model.estimator
    return pipeline


@dataclass(frozen=True, slots=True)
class CompiledTrees:
    """Every tree of a fitted booster in flat arrays, walked all at once.

    Node ``i`` of the forest splits on ``feature[i]`` at ``threshold[i]``
    (missing values go left where ``missing_left[i]``); ``value[i]`` is the
    node's contribution to the log-odds so far (inner node values scaled by
    the learning rate, as the leaves already are).

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
    roots: np.ndarray
    base_value: float
    depth: int
    leaf_table: np.ndarray
    leaf_finders: tuple[TreePredictor, ...]
    known_categories: tuple[np.ndarray, np.ndarray]


#: From this many rows on, find leaves with scikit-learn's compiled tree walk
#: and add up precomputed per-leaf attributions; below it the array walk wins.
BATCH_ROWS = 200

#: Most trees per group, and most leaf combinations a group's table may hold: three
#: 8-leaf trees make 512 rows of attributions, and the whole table stays in cache.
TREES_PER_GROUP = 3
MAX_GROUP_ROWS = 512


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
    for group in _groups([len(table) for _, table, _ in leaf_tables]):
        combined = np.zeros((1, n_features))
        for t in group:
            combined = (combined[:, None, :] + leaf_tables[t][1][None, :, :]).reshape(
                -1, n_features
            )
        grafted = _graft([leaf_tables[t] for t in group], start)
        finders.append(TreePredictor(grafted, *_empty_bitsets(grafted)))
        tables.append(combined)
        start += len(combined)
    return CompiledTrees(
        feature=nodes["feature_idx"].astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        left=nodes["left"].astype(np.intp) + shift,
        right=nodes["right"].astype(np.intp) + shift,
        is_leaf=is_leaf,
        value=value,
        roots=offsets.astype(np.intp),
        base_value=float(np.ravel(booster._baseline_prediction)[0] + value[offsets].sum()),
        depth=int(nodes["depth"].max()) + 1,
        leaf_table=np.concatenate(tables),
        leaf_finders=tuple(finders),
        known_categories=booster._bin_mapper.make_known_categories_bitsets(),
    )


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
    current = np.tile(trees.roots, n_rows)
    row = np.repeat(np.arange(n_rows), trees.roots.size)
    totals = np.zeros(n_rows * n_features)
    for _ in range(trees.depth):
        active = np.flatnonzero(~trees.is_leaf[current])
        if active.size == 0:
            break
        at = current[active]
        feature = trees.feature[at]
        x = X[row[active], feature]
        go_left = np.where(np.isnan(x), trees.missing_left[at], x <= trees.threshold[at])
        child = np.where(go_left, trees.left[at], trees.right[at])
        totals += np.bincount(
            row[active] * n_features + feature,
            weights=trees.value[child] - trees.value[at],
            minlength=totals.size,
        )
        current[active] = child
    return totals.reshape(n_rows, n_features)


def _threaded_batch_contributions(trees: CompiledTrees, X: np.ndarray, threads: int) -> np.ndarray:
    """Split the rows between ``threads`` threads; the tree walks and sums release the GIL.

    Plain threads rather than scikit-learn's OpenMP: a parallel region per
    tree per chunk waits for the slowest thread each time, which on a busy
    machine cost several times the walk itself.
    """
    if threads <= 1 or X.shape[0] < 2 * BATCH_ROWS:
        return _batch_contributions(trees, X)
    parts = np.array_split(np.ascontiguousarray(X, dtype=np.float64), threads)
    with ThreadPoolExecutor(threads, thread_name_prefix="tree-path") as pool:
        return np.concatenate(list(pool.map(lambda part: _batch_contributions(trees, part), parts)))


def _batch_contributions(trees: CompiledTrees, X: np.ndarray) -> np.ndarray:
    """Find each row's leaf combination in every group (compiled walk), then sum their rows."""
    known, feature_map = trees.known_categories
    rows = np.ascontiguousarray(X, dtype=np.float64)
    n_rows, n_groups = rows.shape[0], len(trees.leaf_finders)
    found = np.empty((n_groups, n_rows))
    for group, finder in enumerate(trees.leaf_finders):
        # Written into preallocated rows: no array per group to stack and copy.
        _leaf_values(finder, rows, known, feature_map, found[group])
    leaves = found.T.astype(np.int32)
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


@dataclass(frozen=True, slots=True)
class _Attribution:
    """How one fitted estimator splits its log-odds score among the features."""

    base_value: float
    contributions: Callable[[np.ndarray], np.ndarray]
    method: str


def _attribution(estimator: object, threads: int = 1) -> _Attribution:
    """Prepare the attribution of a scorecard, a booster or a blend of them, once."""
    if isinstance(estimator, BinnedLogisticScorecard):
        return _Attribution(float(estimator.base_value_), estimator.contributions, EXACT)
    if isinstance(estimator, HistGradientBoostingClassifier):
        trees = compile_trees(estimator)
        return _Attribution(
            trees.base_value, lambda X: tree_path_contributions(trees, X, threads), TREE_PATH
        )
    if isinstance(estimator, LogOddsAverage):
        parts = [_attribution(member, threads) for member in estimator.estimators_]
        weights = estimator.weights_

        def blended(X: np.ndarray) -> np.ndarray:
            total = np.zeros((X.shape[0], X.shape[1]))
            for weight, part in zip(weights, parts, strict=True):
                total += weight * part.contributions(X)
            return total

        base = float(sum(w * part.base_value for w, part in zip(weights, parts, strict=True)))
        methods = sorted({part.method for part in parts})
        return _Attribution(base, blended, f"{AVERAGE}: " + ", ".join(methods))
    raise TypeError(f"no explanation method for {type(estimator).__name__}")


class FastExplainer:
    """A calibrated risk model prepared once to score and explain many rows.

    The trees of a booster are compiled once (:func:`compile_trees`), and
    the probability is calibrated from the log-odds the contributions add up
    to, so the model's trees are walked once per row, not twice (once for
    ``predict_proba`` and again for the reasons).

    Parameters
    ----------
    model
        A fitted ``ScoreCalibratedClassifier`` around an ``encode`` +
        ``model`` pipeline (scorecard, gradient boosting or their blend).
    threads
        Threads that share the rows of a large batch (gradient boosting).

    Raises
    ------
    TypeError
        If the model is not such a pipeline, or its estimator has no
        explanation method.
    """

    def __init__(self, model: ScoreCalibratedClassifier, *, threads: int = 1) -> None:
        pipeline = getattr(model, "estimator", None)
        if not isinstance(model, ScoreCalibratedClassifier) or not isinstance(pipeline, Pipeline):
            raise TypeError(f"expected a calibrated risk pipeline, got {type(model).__name__}")
        encoder = pipeline.named_steps.get("encode")
        if not isinstance(encoder, AssessmentEncoder):
            raise TypeError("the risk pipeline has no AssessmentEncoder 'encode' step")
        self.model = model
        self.encoder = encoder
        self.estimator = pipeline.named_steps.get("model")
        self.threads = threads
        self.features: tuple[str, ...] = tuple(encoder.features_)
        self._attribution = _attribution(self.estimator, threads)
        self.method = self._attribution.method

    @property
    def base_value(self) -> float:
        """The log-odds score before any feature's contribution."""
        return self._attribution.base_value

    def logit_and_contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the log-odds score and each feature's contribution to it, for encoded rows.

        The sum equals the estimator's ``decision_function`` to float rounding
        (exactly for the scorecard, about 1e-15 for the trees).
        """
        contributions = self._attribution.contributions(X)
        return self._attribution.base_value + contributions.sum(axis=1), contributions

    def explain(self, assessments: pd.DataFrame) -> Explanation:
        """Return the calibrated probability and contributions of each assessment."""
        logit, contributions = self.logit_and_contributions(self.encoder.transform(assessments))
        return Explanation(
            features=list(self.features),
            base_value=self.base_value,
            contributions=contributions,
            logit=logit,
            probability=self.model.calibrate_scores(logit),
            method=self.method,
        )


def top_contributions(
    contributions: np.ndarray, limit: int, assessed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return, per row, the columns of the ``limit`` largest contributions by size, and their sizes.

    Ties keep column order (a stable sort), so equal rows always get equal reasons.
    With ``assessed`` (rows x features, True where a value was given), a field
    that was not assessed ranks after every assessed one: it is picked only
    when fewer than ``limit`` fields were assessed, and callers showing
    reasons drop it (a reason is a fact about the person, and "not assessed"
    is none).
    """
    size = np.abs(contributions)
    if assessed is not None:
        size = np.where(assessed, size, -1.0)
    order = np.argsort(-size, axis=1, kind="stable")[:, :limit]
    return order, np.take_along_axis(contributions, order, axis=1)


def explain(model: ScoreCalibratedClassifier | Pipeline, assessments: pd.DataFrame) -> Explanation:
    """Explain the log-odds score of each assessment by feature.

    Parameters
    ----------
    model
        A fitted risk pipeline (``encode`` + ``model`` steps), optionally
        wrapped by :func:`models.risk.calibrate`.
    assessments
        Rows to explain, with the model's feature columns.
    """
    pipeline = risk_pipeline(model)
    encoder = pipeline.named_steps["encode"]
    attribution = _attribution(pipeline.named_steps["model"])
    raw = attribution.contributions(encoder.transform(assessments))
    return Explanation(
        features=list(encoder.features_),
        base_value=attribution.base_value,
        contributions=raw,
        logit=attribution.base_value + raw.sum(axis=1),
        probability=model.predict_proba(assessments)[:, 1],
        method=attribution.method,
    )


def top_reasons(
    explanation: Explanation, assessments: pd.DataFrame, *, limit: int = 3
) -> list[list[Reason]]:
    """Return, per row, the (at most) ``limit`` assessed features that moved its score most.

    A field that was not assessed is never a reason: a row with fewer than
    ``limit`` assessed features gets fewer reasons.
    """
    columns = {name: assessments[name].to_numpy(dtype=object) for name in explanation.features}
    assessed = np.column_stack([~pd.isna(columns[name]) for name in explanation.features])
    order, _ = top_contributions(explanation.contributions, limit, assessed)
    reasons = []
    for i, picks in enumerate(order):
        reasons.append(
            [
                Reason(
                    feature=explanation.features[j],
                    value=columns[explanation.features[j]][i],
                    contribution=float(explanation.contributions[i, j]),
                )
                for j in picks
                if assessed[i, j]
            ]
        )
    return reasons


NOT_ASSESSED = "not assessed"


def _levels(column: pd.Series, numeric_bins: int) -> tuple[np.ndarray, list[str]]:
    """Label each value with its level, and list the levels in their natural order."""
    missing = column.isna().to_numpy()
    if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
        labels = column.astype(object).to_numpy()
        order = (
            [str(c) for c in column.cat.categories]
            if isinstance(column.dtype, pd.CategoricalDtype)
            else sorted({str(v) for v in labels[~missing]})
        )
        labels = np.array([str(v) for v in labels], dtype=object)
    else:
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        distinct = np.unique(values[~missing])
        if distinct.size <= numeric_bins:
            labels = np.array([f"{v:g}" for v in values], dtype=object)
            order = [f"{v:g}" for v in distinct]
        else:
            binned = pd.qcut(values, numeric_bins, duplicates="drop")
            labels = np.asarray(binned.astype(str), dtype=object)
            order = [str(interval) for interval in binned.categories]
    labels[missing] = NOT_ASSESSED
    return labels, [*order, NOT_ASSESSED]


def feature_effects(
    explanation: Explanation, assessments: pd.DataFrame, *, numeric_bins: int = 8
) -> pd.DataFrame:
    """Average contribution of each feature at each of its levels.

    Levels are the feature's categories or need levels (plus "not assessed"),
    or quantile ranges for numbers. For the scorecard this recovers its
    points table; for boosting it summarises the tree-path attributions.

    Returns
    -------
    pandas.DataFrame
        Columns ``feature``, ``level``, ``n``, ``contribution`` (log-odds).
    """
    rows = []
    for j, name in enumerate(explanation.features):
        levels, order = _levels(assessments[name], numeric_bins)
        frame = pd.DataFrame({"level": levels, "c": explanation.contributions[:, j]})
        grouped = frame.groupby("level")["c"].agg(["size", "mean"])
        for level in [lv for lv in order if lv in grouped.index]:
            n, mean = grouped.loc[level]
            rows.append({"feature": name, "level": level, "n": int(n), "contribution": mean})
    return pd.DataFrame(rows, columns=["feature", "level", "n", "contribution"])
