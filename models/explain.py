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

The labels, the :class:`Explanation` type and the batch :class:`FastExplainer`
live in :mod:`models.attribution`, the tree walk in :mod:`models.tree_paths`;
they are importable from here too, where the scorer and batch scoring take them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from models.attribution import (
    AVERAGE,
    EXACT,
    TREE_PATH,
    Explanation,
    FastExplainer,
    estimator_attribution,
)
from models.calibration import ScoreCalibratedClassifier

__all__ = [
    "AVERAGE",
    "EXACT",
    "NOT_ASSESSED",
    "TREE_PATH",
    "Explanation",
    "FastExplainer",
    "Reason",
    "explain",
    "feature_effects",
    "risk_pipeline",
    "top_contributions",
    "top_reasons",
]


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
    limit = min(limit, size.shape[1])
    if np.isnan(size).any():
        order = np.argsort(-size, axis=1, kind="stable")[:, :limit]
    else:
        # The same picks as the stable sort, a few passes instead of a sort of every
        # row: argmax takes the first of equal sizes, and a pick is then struck out.
        order = np.empty((size.shape[0], limit), dtype=np.intp)
        rows = np.arange(size.shape[0])
        for k in range(limit):
            order[:, k] = np.argmax(size, axis=1)
            size[rows, order[:, k]] = -np.inf
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
    attribution = estimator_attribution(pipeline.named_steps["model"])
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
