"""Reasons for a score: per-feature contributions that sum to the model's log-odds.

For the scorecard the contributions are exact: each is the feature's bin
value. For gradient boosting they are path attributions (Saabas): walking
each tree from root to leaf, the change in the node value at each split is
credited to the split's feature. They also sum exactly to the log-odds, but
unlike Shapley values they depend on the order of splits, so they are
labelled ``"tree-path (approximate attribution)"``.

The contributions sum to the model's log-odds score (its
``decision_function``). The served probability is the calibrated, monotone
function of that score, so a reason that raises the score never lowers the
probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from models.calibration import ScoreCalibratedClassifier
from models.scorecard import BinnedLogisticScorecard

EXACT = "exact (additive scorecard)"
TREE_PATH = "tree-path (approximate attribution)"


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


def _tree_path_contributions(
    booster: HistGradientBoostingClassifier, X: np.ndarray
) -> tuple[float, np.ndarray]:
    base = float(np.ravel(booster._baseline_prediction)[0])
    contributions = np.zeros(X.shape, dtype=np.float64)
    rows = np.arange(X.shape[0])
    rate = booster.learning_rate
    for (predictor,) in booster._predictors:
        nodes = predictor.nodes
        # Leaves are stored already shrunk by the learning rate, inner nodes not.
        value = np.where(nodes["is_leaf"], nodes["value"], nodes["value"] * rate)
        base += value[0]
        current = np.zeros(X.shape[0], dtype=np.intp)
        active = ~nodes["is_leaf"][current].astype(bool)
        while active.any():
            at = current[active]
            feature = nodes["feature_idx"][at]
            x = X[rows[active], feature]
            left = np.where(
                np.isnan(x), nodes["missing_go_to_left"][at] == 1, x <= nodes["num_threshold"][at]
            )
            child = np.where(left, nodes["left"][at], nodes["right"][at]).astype(np.intp)
            np.add.at(contributions, (rows[active], feature), value[child] - value[at])
            current[active] = child
            active = ~nodes["is_leaf"][current].astype(bool)
    return base, contributions


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
    estimator = pipeline.named_steps["model"]
    X = encoder.transform(assessments)
    if isinstance(estimator, BinnedLogisticScorecard):
        raw_base, raw = float(estimator.base_value_), estimator.contributions(X)
        method = EXACT
    elif isinstance(estimator, HistGradientBoostingClassifier):
        raw_base, raw = _tree_path_contributions(estimator, X)
        method = TREE_PATH
    else:
        raise TypeError(f"no explanation method for {type(estimator).__name__}")
    return Explanation(
        features=list(encoder.features_),
        base_value=raw_base,
        contributions=raw,
        logit=raw_base + raw.sum(axis=1),
        probability=model.predict_proba(assessments)[:, 1],
        method=method,
    )


def top_reasons(
    explanation: Explanation, assessments: pd.DataFrame, *, limit: int = 3
) -> list[list[Reason]]:
    """Return, per row, the ``limit`` features that moved its score most.

    A missing value is reported as ``None`` ("not assessed").
    """
    order = np.argsort(-np.abs(explanation.contributions), axis=1, kind="stable")[:, :limit]
    columns = {name: assessments[name].to_numpy(dtype=object) for name in explanation.features}
    reasons = []
    for i, picks in enumerate(order):
        row = []
        for j in picks:
            name = explanation.features[j]
            value = columns[name][i]
            row.append(
                Reason(
                    feature=name,
                    value=None if pd.isna(value) else value,
                    contribution=float(explanation.contributions[i, j]),
                )
            )
        reasons.append(row)
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
