"""Scores desist is compared with on the same test rows, and the leakage screen.

- The incumbent: a score the source already holds (COMPAS's decile). Its
  ranking is used as it is; for calibration figures its levels are mapped to
  the re-offending rate observed at each level on the *training* split.
- Baselines: a plain logistic regression on a few features (Dressel & Farid
  2018: age and prior count), fitted on the training split.
- Operating points: a cut-off on a score, above which a person is flagged.
  desist's "comparable" cut-off is the one that flags as many people as the
  incumbent's does, found on the calibration split, never the test split.
- The single-feature screen: a feature that alone separates the outcome
  almost perfectly is far more likely a leak than a discovery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.isotonic import isotonic_regression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from data.schema import FIELDS_BY_NAME, Kind
from models.encoding import AssessmentEncoder
from pipeline.bootstrap import roc_auc


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A cut-off on a score: people scoring at or above ``threshold`` are flagged."""

    label: str
    threshold: float


@dataclass(frozen=True, eq=False)
class ScoredTest:
    """One model's scores of the test rows.

    Attributes
    ----------
    name
        Shown in tables, e.g. ``"desist"`` or ``"COMPAS decile"``.
    score
        What the model ranks by (a probability, or a decile).
    probability
        The score as a probability of the outcome (for calibration figures).
    operating_points
        Cut-offs on ``score`` at which error rates are reported.
    """

    name: str
    score: npt.NDArray[np.float64]
    probability: npt.NDArray[np.float64]
    operating_points: tuple[OperatingPoint, ...]


def build_baseline(features: tuple[str, ...]) -> Pipeline:
    """Return an unfitted logistic regression on ``features`` (median-imputed, standardised)."""
    return Pipeline(
        [
            ("encode", AssessmentEncoder(features)),
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    )


def level_rates(
    train_score: npt.ArrayLike, train_outcome: npt.ArrayLike, score: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Map each score to the observed outcome rate of its level on the training rows.

    Rates are smoothed by one pseudo-observation each way and made
    non-decreasing across levels (weighted by level size), so the map keeps
    the score's ranking; scores between or beyond the training levels are
    interpolated or held.
    """
    train = pd.DataFrame({"score": np.asarray(train_score, dtype=float), "y": train_outcome})
    grouped = train.dropna().groupby("score")["y"].agg(["sum", "count"]).sort_index()
    smoothed = (grouped["sum"].to_numpy() + 1) / (grouped["count"].to_numpy() + 2)
    rates = isotonic_regression(
        smoothed, sample_weight=grouped["count"].to_numpy(), increasing=True
    )
    return np.interp(np.asarray(score, dtype=float), grouped.index.to_numpy(dtype=float), rates)


def matched_threshold(probability: npt.ArrayLike, selection_rate: float) -> float:
    """Return the cut-off that flags ``selection_rate`` of ``probability`` (at or above it)."""
    values = np.sort(np.asarray(probability, dtype=float))[::-1]
    flagged = round(selection_rate * len(values))
    flagged = min(max(flagged, 1), len(values))
    return float(values[flagged - 1])


def paired_auc_difference(
    y: npt.ArrayLike,
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    *,
    n_bootstrap: int,
    seed: int,
) -> tuple[float, float, float]:
    """Return AUC(first) - AUC(second) on the same rows, with a 95 % paired bootstrap interval."""
    y_arr = np.asarray(y, dtype=int)
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    point = float(roc_auc_score(y_arr, a) - roc_auc_score(y_arr, b))
    rng = np.random.default_rng([seed, 7])
    diffs = []
    for _ in range(n_bootstrap):
        rows = rng.integers(0, len(y_arr), len(y_arr))
        if y_arr[rows].min() == y_arr[rows].max():
            continue
        diffs.append(roc_auc_score(y_arr[rows], a[rows]) - roc_auc_score(y_arr[rows], b[rows]))
    if len(diffs) < 2:
        return point, float("nan"), float("nan")
    low, high = np.percentile(diffs, [2.5, 97.5])
    return point, float(low), float(high)


def single_feature_aucs(
    frame: pd.DataFrame, features: tuple[str, ...], target: str
) -> pd.DataFrame:
    """Return how well each feature alone separates the outcome, on ``frame``.

    A numeric feature ranks by its value (missing as the median); a category
    by its own observed rate. The AUC reported is ``max(AUC, 1 - AUC)``, so
    a feature that separates in either direction shows.

    Returns
    -------
    pandas.DataFrame
        Columns ``feature, auc``, highest first.
    """
    y = frame[target].to_numpy(dtype=int)
    rows = []
    for name in features:
        column = frame[name]
        if FIELDS_BY_NAME[name].kind is Kind.CATEGORY:
            labels = column.astype(object).where(column.notna(), "missing")
            rates = pd.Series(y).groupby(labels.to_numpy()).mean()
            score = labels.map(rates).to_numpy(dtype=float)
        else:
            values = column.to_numpy(dtype=float, na_value=np.nan)
            fill = np.nanmedian(values) if np.isfinite(values).any() else 0.0
            score = np.where(np.isnan(values), fill, values)
        # From counts per distinct score (one sort), not sklearn's curve: the same AUC.
        auc = 0.5 if np.unique(score).size < 2 else roc_auc(y, score)
        rows.append({"feature": name, "auc": max(auc, 1 - auc)})
    return pd.DataFrame(rows, columns=["feature", "auc"]).sort_values("auc", ascending=False)
