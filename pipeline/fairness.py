"""Fairness audit of desist and the incumbent, side by side, from one bootstrap.

For every audited attribute (race, sex) and every model, on the same test
rows: ROC AUC, calibration within groups (mean predicted against observed,
overall and by decile of score), and at each operating cut-off the selection
rate, false positive rate and false negative rate, each with a bootstrap
interval; plus the ratio of error rates between two named groups (e.g.
African-American against Caucasian defendants) with its own interval. Every
interval comes from one set of resamples per group, drawn once and read by
every model and figure at once (:mod:`pipeline.bootstrap`); a group below the
reporting minimum is listed with its size only, too few to judge.

Reading these figures needs the impossibility results (see
:data:`IMPOSSIBILITY`): when groups re-offend at different rates, no score
can be calibrated within groups and have equal error rates across them.
Nothing here "fixes" a disparity by using race; the audit only reports.

:func:`audit_fairness` returns a :class:`FairnessAudit`, a frozen result of
tables; nothing here draws or renders. :mod:`pipeline.fairness_plots` draws
it and :mod:`pipeline.fairness_report` renders it as an HTML page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.bands import BAND_NAMES, RiskBands
from pipeline.bootstrap import (
    FLAG_RATES,
    THRESHOLD_FREE,
    GroupFigures,
    draw_group_resamples,
    group_figures,
    percentile_interval,
)
from pipeline.comparison import ScoredTest
from pipeline.config import FairnessConfig
from pipeline.evaluation import NOT_RECORDED

IMPOSSIBILITY = (
    "These figures cannot all be equal across groups at once. Where groups re-offend at "
    "different base rates{here}, a score that is calibrated within each group (a given "
    "score means the same risk whoever holds it) must give the higher-base-rate group a "
    "higher false positive rate and a lower false negative rate at any single cut-off "
    "(Chouldechova 2017; Kleinberg, Mullainathan and Raghavan 2016). Equal error rates "
    "could only be bought by scoring groups differently, which means using {attribute}, or by "
    "giving up calibration. desist does neither: {attribute} is never a feature and no "
    "group-specific cut-off is used. Read the error-rate ratios as a consequence of "
    "different base rates meeting one cut-off, and judge a score first on whether it "
    "means the same thing in every group (calibration within groups) and on how well it "
    "ranks within each group (AUC). The outcome itself is a new arrest, charge or sanction, "
    "which also measures policing: base rates recorded this way may overstate differences "
    "in actual offending."
)


def how_to_read(base_rates: pd.DataFrame, attribute: str, min_group_size: int) -> str:
    """Return :data:`IMPOSSIBILITY` written from the data's own groups of ``attribute``.

    Names the groups of ``min_group_size`` or more with the highest and lowest
    observed rates; says nothing about groups the data does not have.
    """
    rows = base_rates[(base_rates["attribute"] == attribute) & (base_rates["n"] >= min_group_size)]
    here = ""
    if len(rows) >= 2:
        ranked = rows.sort_values("observed_rate")
        low, high = ranked.iloc[0], ranked.iloc[-1]
        here = (
            f" (here, by {attribute}: {high['group']} {high['observed_rate']:.0%} against "
            f"{low['group']} {low['observed_rate']:.0%}, among groups of {min_group_size}+)"
        )
    return IMPOSSIBILITY.format(here=here, attribute=attribute)


METRIC_LABELS = {
    "roc_auc": "ROC AUC",
    "mean_predicted": "mean predicted",
    "observed_rate": "observed rate",
    "calibration_gap": "calibration gap (predicted - observed)",
    "selection_rate": "selection rate (flagged)",
    "fpr": "false positive rate",
    "fnr": "false negative rate",
}


@dataclass(frozen=True, eq=False)
class FairnessAudit:
    """What the audit found.

    Attributes
    ----------
    by_group
        Long table: ``model, operating_point, attribute, group, n, metric,
        value, ci_low, ci_high``; threshold-free metrics have operating point
        ``"-"``. A group below :attr:`min_group_size` keeps its size only
        (value and interval NaN): too few to judge.
    calibration_by_decile
        ``model, attribute, group, decile, n, mean_predicted, observed_rate``:
        deciles of each model's score over all test rows.
    calibration_by_band
        ``model, attribute, group, band, n, mean_predicted, observed_rate``
        for the models scored in risk bands (desist).
    ratios
        ``model, operating_point, metric, attribute, group, reference,
        value, ci_low, ci_high``: group's rate over the reference group's.
    base_rates
        ``attribute, group, n, observed_rate``.
    min_group_size
        The reporting minimum: smaller groups are too few to judge.
    """

    by_group: pd.DataFrame
    calibration_by_decile: pd.DataFrame
    calibration_by_band: pd.DataFrame
    ratios: pd.DataFrame
    base_rates: pd.DataFrame
    min_group_size: int = 0

    def ratio(self, model: str, operating_point: str, metric: str = "fpr") -> pd.Series | None:
        """Return one row of :attr:`ratios`, or None."""
        rows = self.ratios[
            (self.ratios["model"] == model)
            & (self.ratios["operating_point"] == operating_point)
            & (self.ratios["metric"] == metric)
        ]
        return None if rows.empty else rows.iloc[0]

    def value(self, model: str, attribute: str, group: str, metric: str, point: str = "-") -> float:
        """Return one figure of :attr:`by_group` (NaN when absent or too few to judge)."""
        table = self.by_group
        rows = table[
            (table["model"] == model)
            & (table["attribute"] == attribute)
            & (table["group"] == group)
            & (table["metric"] == metric)
            & (table["operating_point"] == point)
        ]
        return math.nan if rows.empty else float(rows["value"].iloc[0])


def too_few(n: int) -> str:
    """Return what a group below the reporting minimum shows instead of its figures."""
    return f"too few to judge (n = {n:,})"


def _labels(values: pd.Series) -> pd.Series:
    series = values.reset_index(drop=True).astype(object)
    return series.where(series.notna(), NOT_RECORDED).map(str)


_RATIO_COLUMNS = (
    *("model", "operating_point", "metric", "attribute", "group", "reference"),
    *("value", "ci_low", "ci_high"),
)


def _no_progress(message: str) -> None:
    """Discard progress lines (a library caller's default)."""


def audit_fairness(
    y: npt.ArrayLike,
    models: Sequence[ScoredTest],
    groups: Mapping[str, pd.Series],
    *,
    bands: RiskBands,
    banded: Sequence[str],
    config: FairnessConfig,
    seed: int,
    n_bootstrap: int | None = None,
    progress: Callable[[str], None] = _no_progress,
) -> FairnessAudit:
    """Audit ``models`` on the same rows, by every attribute in ``groups``.

    Every group is resampled once (:func:`pipeline.bootstrap.draw_group_resamples`)
    and every model's figures and the ratios are read off those resamples, the
    same the evaluation's group table reads: one interval per figure.

    Parameters
    ----------
    y
        Observed outcomes of the test rows.
    models
        Each model's scores of those rows and its operating cut-offs.
    groups
        Audited attribute name to its values, aligned with ``y``.
    bands
        Risk bands, for the models named in ``banded``.
    banded
        Models whose probabilities are reported in risk bands.
    config
        Group sizes, bootstrap size and the groups of the headline ratio.
    seed
        Seeds every group's resamples (with the attribute's and group's names).
    n_bootstrap
        Resamples per group when not ``config.n_bootstrap``: the risk job
        passes its evaluation's, so both read the same resamples.
    progress
        Receives one line per attribute, with a count.
    """
    y_arr = np.asarray(y, dtype=np.int64)
    rows: list[dict[str, object]] = []
    decile_rows: list[dict[str, object]] = []
    band_rows: list[dict[str, object]] = []
    base_rows: list[dict[str, object]] = []
    ratio_rows: list[dict[str, object]] = []
    labels = {attribute: _labels(raw) for attribute, raw in groups.items()}
    resamples = draw_group_resamples(
        labels, config.n_bootstrap if n_bootstrap is None else n_bootstrap, seed
    )
    for step, (attribute, attribute_labels) in enumerate(labels.items(), start=1):
        drawn = resamples.of(attribute)
        progress(
            f"  fairness {step}/{len(labels)}: {attribute}, {len(drawn)} groups x "
            f"{len(models)} models, {resamples.n_bootstrap} resamples each"
        )
        base_rows += [
            {
                "attribute": attribute,
                "group": d.group,
                "n": d.n,
                "observed_rate": float(y_arr[d.rows].mean()),
            }
            for d in sorted(drawn, key=lambda d: -d.n)
        ]
        for model in models:
            thresholds = [point.threshold for point in model.operating_points]
            figures = {
                d.group: group_figures(d, y_arr, model.probability, model.score, thresholds)
                for d in drawn
            }
            rows += _metric_rows(model, figures, config.min_group_size)
            decile_rows += _calibration_rows(
                y_arr, model, attribute_labels, attribute, "decile", None
            )
            if model.name in banded:
                band_rows += _calibration_rows(
                    y_arr, model, attribute_labels, attribute, "band", bands
                )
            if attribute == config.attribute:
                ratio_rows += _ratio_rows(model, figures, attribute, config)
    return FairnessAudit(
        by_group=pd.DataFrame(rows),
        calibration_by_decile=pd.DataFrame(decile_rows),
        calibration_by_band=pd.DataFrame(band_rows),
        ratios=pd.DataFrame(ratio_rows, columns=list(_RATIO_COLUMNS)),
        base_rates=pd.DataFrame(base_rows),
        min_group_size=config.min_group_size,
    )


def _metric_keys(model: ScoredTest) -> list[tuple[str, str, str]]:
    """(key in :class:`GroupFigures`, operating point label, metric name) of every figure."""
    keys = [(name, "-", name) for name in THRESHOLD_FREE]
    for i, point in enumerate(model.operating_points):
        keys += [(f"{name}@{i}", point.label, name) for name in FLAG_RATES]
    return keys


def _metric_rows(
    model: ScoredTest, figures: Mapping[str, GroupFigures], min_group_size: int
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for group, found in figures.items():
        # Below the reporting minimum a group's figures are noise (an AUC of 1.0 from
        # two people): its size is kept, its figures are not.
        judged = found.n >= min_group_size
        for key, point, name in _metric_keys(model):
            low, high = found.interval(key) if judged else (math.nan, math.nan)
            out.append(
                {
                    "model": model.name,
                    "operating_point": point,
                    "attribute": found.attribute,
                    "group": group,
                    "n": found.n,
                    "metric": name,
                    "value": found.values[key] if judged else math.nan,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return out


def _calibration_rows(
    y: npt.NDArray[np.int64],
    model: ScoredTest,
    labels: pd.Series,
    attribute: str,
    kind: str,
    bands: RiskBands | None,
) -> list[dict[str, object]]:
    if bands is not None:
        level = np.asarray(BAND_NAMES, dtype=object)[bands.band_index(model.probability)]
        order = list(BAND_NAMES)
    else:
        distinct = np.unique(model.score)
        if distinct.size <= 10:  # already a decile (or coarser) score
            level = model.score.astype(int).astype(object)
        else:
            edges = np.quantile(model.score, np.linspace(0, 1, 11)[1:-1])
            level = (np.searchsorted(edges, model.score, side="right") + 1).astype(object)
        order = sorted(set(level))
    frame = pd.DataFrame({"group": labels, "level": level, "p": model.probability, "y": y})
    out = []
    for (group, value), part in frame.groupby(["group", "level"], sort=False):
        out.append(
            {
                "model": model.name,
                "attribute": attribute,
                "group": group,
                kind: value,
                "n": len(part),
                "mean_predicted": float(part["p"].mean()),
                "observed_rate": float(part["y"].mean()),
            }
        )
    return sorted(out, key=lambda r: (str(r["group"]), order.index(r[kind])))


def _ratio_rows(
    model: ScoredTest, figures: Mapping[str, GroupFigures], attribute: str, config: FairnessConfig
) -> list[dict[str, object]]:
    members, reference = figures.get(config.group), figures.get(config.reference)
    if members is None or reference is None:
        return []
    if min(members.n, reference.n) < config.min_group_size:
        return []
    out: list[dict[str, object]] = []
    for i, point in enumerate(model.operating_points):
        for name in ("fpr", "fnr", "selection_rate"):
            key = f"{name}@{i}"
            # The two groups are resampled independently, so the ratio's resamples are
            # the ratios of theirs: the same draws as every other figure.
            top, bottom = members.samples[key], reference.samples[key]
            with np.errstate(invalid="ignore", divide="ignore"):
                samples = np.where(bottom > 0, top / bottom, np.nan)
            low, high = percentile_interval(samples)
            out.append(
                {
                    "model": model.name,
                    "operating_point": point.label,
                    "metric": name,
                    "attribute": attribute,
                    "group": config.group,
                    "reference": config.reference,
                    "value": _safe_ratio(members.values[key], reference.values[key]),
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return out


def _safe_ratio(top: float, bottom: float) -> float:
    return math.nan if not bottom or math.isnan(bottom) else top / bottom
