"""Fairness audit of desist and the incumbent, side by side, with fairlearn's ``MetricFrame``.

For every audited attribute (race, sex) and every model, on the same test
rows: ROC AUC, calibration within groups (mean predicted against observed,
overall and by decile of score), and at each operating cut-off the selection
rate, false positive rate and false negative rate, each with a bootstrap
interval; plus the ratio of error rates between two named groups (e.g.
African-American against Caucasian defendants) with its own interval.

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
from fairlearn.metrics import MetricFrame
from sklearn.metrics import roc_auc_score

from models.bands import BAND_NAMES, RiskBands
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


#: Quantiles of the bootstrap intervals.
CI = (0.025, 0.975)
METRIC_LABELS = {
    "roc_auc": "ROC AUC",
    "mean_predicted": "mean predicted",
    "observed_rate": "observed rate",
    "calibration_gap": "calibration gap (predicted - observed)",
    "selection_rate": "selection rate (flagged)",
    "fpr": "false positive rate",
    "fnr": "false negative rate",
}

Metric = Callable[..., float]


@dataclass(frozen=True, eq=False)
class FairnessAudit:
    """What the audit found.

    Attributes
    ----------
    by_group
        Long table: ``model, operating_point, attribute, group, n, metric,
        value, ci_low, ci_high``; threshold-free metrics have operating point
        ``"-"``.
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
    """

    by_group: pd.DataFrame
    calibration_by_decile: pd.DataFrame
    calibration_by_band: pd.DataFrame
    ratios: pd.DataFrame
    base_rates: pd.DataFrame

    def ratio(self, model: str, operating_point: str, metric: str = "fpr") -> pd.Series | None:
        """Return one row of :attr:`ratios`, or None."""
        rows = self.ratios[
            (self.ratios["model"] == model)
            & (self.ratios["operating_point"] == operating_point)
            & (self.ratios["metric"] == metric)
        ]
        return None if rows.empty else rows.iloc[0]

    def value(self, model: str, attribute: str, group: str, metric: str, point: str = "-") -> float:
        """Return one figure of :attr:`by_group` (NaN when absent)."""
        table = self.by_group
        rows = table[
            (table["model"] == model)
            & (table["attribute"] == attribute)
            & (table["group"] == group)
            & (table["metric"] == metric)
            & (table["operating_point"] == point)
        ]
        return math.nan if rows.empty else float(rows["value"].iloc[0])


def _auc(y: npt.NDArray[np.int64], score: npt.NDArray[np.float64], **_: object) -> float:
    y = np.asarray(y)
    return math.nan if y.min() == y.max() else float(roc_auc_score(y, score))


def _mean_predicted(
    y: npt.NDArray[np.int64], score: object, *, p: npt.NDArray[np.float64]
) -> float:
    return float(np.mean(p))


def _observed_rate(y: npt.NDArray[np.int64], score: object, **_: object) -> float:
    return float(np.mean(y))


def _calibration_gap(
    y: npt.NDArray[np.int64], score: object, *, p: npt.NDArray[np.float64]
) -> float:
    return float(np.mean(p) - np.mean(y))


def _flag_rate(threshold: float, outcome: int | None) -> Metric:
    """Share flagged (score >= threshold), among all or among those with ``outcome``."""

    def rate(y: npt.NDArray[np.int64], score: npt.NDArray[np.float64], **_: object) -> float:
        y, score = np.asarray(y), np.asarray(score)
        flagged = score >= threshold
        if outcome is None:
            return float(flagged.mean()) if len(y) else math.nan
        members = y == outcome
        if not members.any():
            return math.nan
        share = flagged[members].mean()
        return float(share if outcome == 0 else 1 - share)

    return rate


def _labels(values: pd.Series) -> pd.Series:
    series = values.reset_index(drop=True).astype(object)
    return series.where(series.notna(), NOT_RECORDED).map(str)


def audit_fairness(
    y: npt.ArrayLike,
    models: Sequence[ScoredTest],
    groups: Mapping[str, pd.Series],
    *,
    bands: RiskBands,
    banded: Sequence[str],
    config: FairnessConfig,
    seed: int,
) -> FairnessAudit:
    """Audit ``models`` on the same rows, by every attribute in ``groups``.

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
        Seeds every bootstrap.
    """
    y_arr = np.asarray(y, dtype=np.int64)
    rows: list[dict[str, object]] = []
    decile_rows: list[dict[str, object]] = []
    band_rows: list[dict[str, object]] = []
    base_rows: list[dict[str, object]] = []
    ratio_rows: list[dict[str, object]] = []
    for attribute, raw in groups.items():
        labels = _labels(raw)
        counts = labels.value_counts()
        for group, n in counts.items():
            base_rows.append(
                {
                    "attribute": attribute,
                    "group": group,
                    "n": int(n),
                    "observed_rate": float(y_arr[(labels == group).to_numpy()].mean()),
                }
            )
        large = labels.isin(counts[counts >= config.min_group_size].index).to_numpy()
        for model in models:
            rows += _metric_rows(y_arr, model, labels, large, attribute, config, seed)
            decile_rows += _calibration_rows(y_arr, model, labels, attribute, "decile", None)
            if model.name in banded:
                band_rows += _calibration_rows(y_arr, model, labels, attribute, "band", bands)
            if attribute == config.attribute:
                ratio_rows += _ratio_rows(y_arr, model, labels, attribute, config, seed)
    return FairnessAudit(
        by_group=pd.DataFrame(rows),
        calibration_by_decile=pd.DataFrame(decile_rows),
        calibration_by_band=pd.DataFrame(band_rows),
        ratios=pd.DataFrame(
            ratio_rows,
            columns=[
                "model",
                "operating_point",
                "metric",
                "attribute",
                "group",
                "reference",
                "value",
                "ci_low",
                "ci_high",
            ],
        ),
        base_rates=pd.DataFrame(base_rows),
    )


def _metrics_of(model: ScoredTest) -> dict[str, tuple[str, str, Metric]]:
    """Metric key -> (operating point, metric name, function of (y, score, p=probability))."""
    metrics: dict[str, tuple[str, str, Metric]] = {
        "roc_auc": ("-", "roc_auc", _auc),
        "mean_predicted": ("-", "mean_predicted", _mean_predicted),
        "observed_rate": ("-", "observed_rate", _observed_rate),
        "calibration_gap": ("-", "calibration_gap", _calibration_gap),
    }
    for i, point in enumerate(model.operating_points):
        for name, outcome in (("selection_rate", None), ("fpr", 0), ("fnr", 1)):
            metrics[f"{name}@{i}"] = (point.label, name, _flag_rate(point.threshold, outcome))
    return metrics


def _metric_rows(
    y: npt.NDArray[np.int64],
    model: ScoredTest,
    labels: pd.Series,
    large: npt.NDArray[np.bool_],
    attribute: str,
    config: FairnessConfig,
    seed: int,
) -> list[dict[str, object]]:
    metrics = _metrics_of(model)
    out: list[dict[str, object]] = []
    # Intervals only where a group is large enough to resample meaningfully.
    for subset, n_boot in ((large, config.n_bootstrap), (~large, None)):
        if not subset.any():
            continue
        probability = model.probability[subset]
        frame = MetricFrame(
            metrics={key: function for key, (_, _, function) in metrics.items()},
            y_true=y[subset],
            y_pred=model.score[subset],
            sensitive_features=labels[subset].to_numpy(),
            # Every metric receives the probability too; calibration metrics use it.
            sample_params={key: {"p": probability} for key in metrics},
            n_boot=n_boot,
            ci_quantiles=list(CI) if n_boot else None,
            random_state=seed if n_boot else None,
        )
        by_group = frame.by_group
        low = frame.by_group_ci[0] if n_boot else None
        high = frame.by_group_ci[1] if n_boot else None
        sizes = labels[subset].value_counts()
        for group in by_group.index:
            for key, (point, name, _) in metrics.items():
                out.append(
                    {
                        "model": model.name,
                        "operating_point": point,
                        "attribute": attribute,
                        "group": str(group),
                        "n": int(sizes[group]),
                        "metric": name,
                        "value": float(by_group.loc[group, key]),
                        "ci_low": math.nan if low is None else float(low.loc[group, key]),
                        "ci_high": math.nan if high is None else float(high.loc[group, key]),
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
    y: npt.NDArray[np.int64],
    model: ScoredTest,
    labels: pd.Series,
    attribute: str,
    config: FairnessConfig,
    seed: int,
) -> list[dict[str, object]]:
    members = (labels == config.group).to_numpy()
    reference = (labels == config.reference).to_numpy()
    if members.sum() < config.min_group_size or reference.sum() < config.min_group_size:
        return []
    rng = np.random.default_rng([seed, 11])
    a_rows, b_rows = np.flatnonzero(members), np.flatnonzero(reference)
    draws = [
        (rng.choice(a_rows, a_rows.size), rng.choice(b_rows, b_rows.size))
        for _ in range(config.n_bootstrap)
    ]
    out = []
    for point in model.operating_points:
        for name, outcome in (("fpr", 0), ("fnr", 1), ("selection_rate", None)):
            rate = _flag_rate(point.threshold, outcome)
            value = _safe_ratio(
                rate(y[a_rows], model.score[a_rows]), rate(y[b_rows], model.score[b_rows])
            )
            samples = np.array(
                [
                    _safe_ratio(rate(y[a], model.score[a]), rate(y[b], model.score[b]))
                    for a, b in draws
                ]
            )
            finite = samples[np.isfinite(samples)]
            low, high = np.percentile(finite, [2.5, 97.5]) if finite.size > 1 else (math.nan,) * 2
            out.append(
                {
                    "model": model.name,
                    "operating_point": point.label,
                    "metric": name,
                    "attribute": attribute,
                    "group": config.group,
                    "reference": config.reference,
                    "value": value,
                    "ci_low": float(low),
                    "ci_high": float(high),
                }
            )
    return out


def _safe_ratio(top: float, bottom: float) -> float:
    return math.nan if not bottom or math.isnan(bottom) else top / bottom
