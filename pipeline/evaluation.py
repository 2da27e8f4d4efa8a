"""Evaluate calibrated risk scores: discrimination, calibration, bands and groups.

:func:`evaluate_scores` is a pure function of outcomes ``y`` and
probabilities ``p`` that returns an :class:`Evaluation`, a frozen result of
numbers and tables; nothing is logged or drawn. The caller sends
:meth:`Evaluation.metrics` to MLflow, and the model card
(:mod:`pipeline.model_card`) and the figures (:mod:`pipeline.plots`) take the
tables.

Uncertainty comes from a non-parametric bootstrap (95 % percentile
intervals, :mod:`pipeline.bootstrap`); the calibration measures it reports
(ECE, slope, noise floor) are in :mod:`pipeline.calibration_metrics`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score

from models.bands import BAND_NAMES, RiskBands
from pipeline.bootstrap import (
    bootstrap_auc_and_gap,
    draw_group_resamples,
    group_figures,
    percentile_interval,
    roc_auc,
)
from pipeline.calibration_metrics import (
    FloatArray,
    IntArray,
    calibration_slope_intercept,
    check_scores,
    debiased_calibration_error,
    expected_calibration_error,
)
from pipeline.names import slug

#: Group label for people whose protected characteristic was not recorded.
NOT_RECORDED = "not recorded"

#: Whole-sample metrics: ranking and accuracy of the probabilities, then calibration.
HEADLINE_KEYS: tuple[str, ...] = (
    *("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "pr_auc", "brier", "log_loss"),
    *("ece", "ece_debiased", "calibration_slope", "calibration_intercept", "base_rate", "n"),
)
BAND_COLUMNS: tuple[str, ...] = ("band", "n", "share", "mean_predicted", "observed_rate")
#: Columns of the group table: who, ranking within the group, calibration within it.
GROUP_COLUMNS: tuple[str, ...] = (
    *("attribute", "group", "n", "roc_auc", "roc_auc_ci_low", "roc_auc_ci_high"),
    *("ece", "mean_predicted", "observed_rate", "calibration_gap"),
    *("calibration_gap_ci_low", "calibration_gap_ci_high"),
)
_GROUP_METRICS: tuple[str, ...] = GROUP_COLUMNS[2:]
_BAND_METRICS: tuple[str, ...] = BAND_COLUMNS[1:]

# Probabilities are clipped this far from 0 and 1 for the log loss, tightly,
# so a confidently wrong score is still punished heavily.
_LOG_LOSS_CLIP = 1e-15
_SAFE_METRIC_NAME = re.compile(r"^[A-Za-z0-9_./ -]*$")


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The evaluation of one set of scores against outcomes.

    Attributes
    ----------
    headline
        Whole-sample metrics, keys as in :data:`HEADLINE_KEYS`.
    band_table
        One row per risk band in :data:`models.bands.BAND_NAMES` order, columns
        ``band, n, share, mean_predicted, observed_rate``; an empty band has
        ``n = 0`` and NaN rates.
    group_table
        One row per group of each audited attribute, columns as in
        :data:`GROUP_COLUMNS`. ``calibration_gap`` is mean predicted minus
        observed rate, so a positive gap means the group's risk is
        over-stated.
    """

    headline: dict[str, float]
    band_table: pd.DataFrame
    group_table: pd.DataFrame

    def metrics(self, prefix: str = "", min_group_size: int = 0) -> dict[str, float]:
        """Flatten everything into MLflow metric names.

        Parameters
        ----------
        prefix
            Put before every name, e.g. ``"test_"``. Must itself be
            MLflow-safe.
        min_group_size
            The reporting minimum: a smaller group logs its size only, never
            figures (an AUC of 1.0 from three people would chart as a result).

        Returns
        -------
        dict[str, float]
            ``{prefix}{headline key}``, ``{prefix}band_{band}_{column}`` and
            ``{prefix}group_{attribute}_{group}_{column}``, with band and
            group names lower-cased and every run of other characters turned
            into ``_`` (``"very high"`` becomes ``very_high``). NaN values
            are left out, since MLflow cannot chart them.

        Raises
        ------
        ValueError
            If ``prefix`` holds a character MLflow does not allow, or two
            groups of one attribute reduce to the same name.
        """
        if not _SAFE_METRIC_NAME.match(prefix):
            raise ValueError(f"metric prefix {prefix!r} may only use letters, digits and _./ -")
        named: list[tuple[str, float]] = [
            (f"{prefix}{key}", float(value)) for key, value in self.headline.items()
        ]
        for row in self.band_table.itertuples(index=False):
            stem = f"{prefix}band_{slug(str(row.band))}"
            named += [(f"{stem}_{column}", float(getattr(row, column))) for column in _BAND_METRICS]
        for row in self.group_table.itertuples(index=False):
            stem = f"{prefix}group_{slug(str(row.attribute))}_{slug(str(row.group))}"
            columns = _GROUP_METRICS if row.n >= min_group_size else ("n",)
            named += [(f"{stem}_{column}", float(getattr(row, column))) for column in columns]
        out = dict(named)
        if len(out) != len(named):
            # e.g. groups "Black" and "black": one would silently overwrite the other.
            clashes = sorted({name for name, _ in named if sum(n == name for n, _ in named) > 1})
            raise ValueError(f"different groups give the same metric names: {clashes[:5]}")
        return {name: value for name, value in out.items() if not math.isnan(value)}

    def max_calibration_gap(self, min_group_size: int) -> float:
        """Return the largest absolute calibration gap among large enough groups.

        Parameters
        ----------
        min_group_size
            Groups with fewer people are ignored: their gaps are mostly noise.

        Returns
        -------
        float
            ``max |mean_predicted - observed_rate|`` over groups with
            ``n >= min_group_size``; NaN when no group qualifies.
        """
        table = self.group_table
        gaps = table.loc[table["n"] >= min_group_size, "calibration_gap"].abs().dropna()
        return float(gaps.max()) if len(gaps) else math.nan


def evaluate_scores(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    bands: RiskBands,
    groups: Mapping[str, np.ndarray | pd.Series],
    n_bootstrap: int = 200,
    seed: int = 0,
) -> Evaluation:
    """Evaluate probabilities ``p`` against outcomes ``y``, overall, by band and by group.

    Parameters
    ----------
    y
        Observed outcomes, 0 or 1.
    p
        Predicted probabilities of outcome 1.
    bands
        The risk bands the scores are reported in.
    groups
        Audited attributes (e.g. ``{"sex": ..., "ethnicity": ...}``), each
        aligned with ``y`` by position. Missing values (None, NaN, pd.NA)
        form the group ``"not recorded"``.
    n_bootstrap
        Bootstrap resamples for the 95 % percentile intervals; 0 gives NaN
        intervals. Groups are resampled within themselves, so a group's
        interval reflects its own size.
    seed
        Seeds the resampling. Each group gets its own stream derived from
        ``seed`` and its name, so its interval does not depend on which other
        groups are evaluated.

    Returns
    -------
    Evaluation
        Headline metrics, the band table and the group table. ECE uses 10
        equal-mass bins (see :func:`expected_calibration_error`); ``pr_auc``
        is the average precision; ``log_loss`` clips ``p`` to
        ``[1e-15, 1 - 1e-15]``; AUCs are NaN where only one outcome occurs.

    Raises
    ------
    ValueError
        If ``y`` or ``p`` is invalid (see :func:`check_scores`), a group array
        differs in length from ``y``, or ``n_bootstrap`` is negative.
    """
    y_arr, p_arr = check_scores(y, p)
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be 0 or more, got {n_bootstrap}")
    n = len(y_arr)
    group_labels = {name: _group_labels(name, values, n) for name, values in groups.items()}

    auc = roc_auc(y_arr, p_arr)
    boot_auc, _ = bootstrap_auc_and_gap(y_arr, p_arr, n_bootstrap, np.random.default_rng([seed]))
    auc_low, auc_high = percentile_interval(boot_auc)
    slope, intercept = calibration_slope_intercept(y_arr, p_arr)
    clipped = np.clip(p_arr, _LOG_LOSS_CLIP, 1 - _LOG_LOSS_CLIP)
    log_loss = -np.mean(y_arr * np.log(clipped) + (1 - y_arr) * np.log(1 - clipped))
    headline = {
        "roc_auc": auc,
        "roc_auc_ci_low": auc_low,
        "roc_auc_ci_high": auc_high,
        "pr_auc": _average_precision(y_arr, p_arr),
        "brier": float(np.mean((p_arr - y_arr) ** 2)),
        "log_loss": float(log_loss),
        "ece": expected_calibration_error(y_arr, p_arr),
        "ece_debiased": debiased_calibration_error(y_arr, p_arr),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "base_rate": float(y_arr.mean()),
        "n": float(n),
    }
    return Evaluation(
        headline=headline,
        band_table=_band_table(y_arr, p_arr, bands),
        group_table=_group_table(y_arr, p_arr, group_labels, n_bootstrap, seed),
    )


def _band_table(y: IntArray, p: FloatArray, bands: RiskBands) -> pd.DataFrame:
    index = bands.band_index(p)
    rows = []
    for i, name in enumerate(BAND_NAMES):
        members = index == i
        count = int(members.sum())
        rows.append(
            {
                "band": name,
                "n": count,
                "share": count / len(y),
                "mean_predicted": float(p[members].mean()) if count else math.nan,
                "observed_rate": float(y[members].mean()) if count else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=list(BAND_COLUMNS))


def _group_labels(name: str, values: np.ndarray | pd.Series, n: int) -> pd.Series:
    """Return the values as string labels, missing ones as ``NOT_RECORDED``, in report order."""
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else None
    if series is None:
        array = np.asarray(values, dtype=object)
        if array.ndim != 1:
            raise ValueError(f"group {name!r} must be one-dimensional, got shape {array.shape}")
        series = pd.Series(array, dtype=object)
    if len(series) != n:
        raise ValueError(f"group {name!r} has {len(series)} values but there are {n} outcomes")
    missing = series.isna().to_numpy()
    if isinstance(series.dtype, pd.CategoricalDtype):
        # A categorical's declared order (e.g. the schema's) is the natural report order.
        present = set(series[~missing])
        ordered = [c for c in series.cat.categories if c in present]
    else:
        ordered = list(pd.unique(series[~missing]))
        try:
            ordered = sorted(ordered)
        except TypeError:
            ordered = sorted(ordered, key=str)
    order = [str(v) for v in dict.fromkeys(ordered)]
    if missing.any():
        order.append(NOT_RECORDED)
    labels = series.astype(object).where(~missing, NOT_RECORDED).map(str)
    return pd.Series(pd.Categorical(labels, categories=list(dict.fromkeys(order))))


def _group_table(
    y: IntArray,
    p: FloatArray,
    group_labels: Mapping[str, pd.Series],
    n_bootstrap: int,
    seed: int,
) -> pd.DataFrame:
    rows = []
    # The same resamples (and figures) as the fairness audit's, so a group's interval is one.
    for draws in draw_group_resamples(group_labels, n_bootstrap, seed).groups:
        figures = group_figures(draws, y, p, p)
        auc_low, auc_high = figures.interval("roc_auc")
        gap_low, gap_high = figures.interval("calibration_gap")
        rows.append(
            {
                "attribute": draws.attribute,
                "group": draws.group,
                "n": draws.n,
                "roc_auc": figures.values["roc_auc"],
                "roc_auc_ci_low": auc_low,
                "roc_auc_ci_high": auc_high,
                "ece": expected_calibration_error(y[draws.rows], p[draws.rows]),
                "mean_predicted": figures.values["mean_predicted"],
                "observed_rate": figures.values["observed_rate"],
                "calibration_gap": figures.values["calibration_gap"],
                "calibration_gap_ci_low": gap_low,
                "calibration_gap_ci_high": gap_high,
            }
        )
    return pd.DataFrame(rows, columns=list(GROUP_COLUMNS))


def _average_precision(y: IntArray, p: FloatArray) -> float:
    if y.min() == y.max():
        return math.nan
    return float(average_precision_score(y, p))
