"""The checks of a monitoring run, each a test with a known false alarm rate and a floor.

A :class:`Check` holds its figure (the size of the change, in the units of
its floor), its p-value under "nothing changed" and, once the run's checks
are known, whether it alerts: :func:`decide` shares the run's false alarm
rate over every tested check (Bonferroni, valid whatever their dependence)
and alerts only where the p-value is below that share *and* the figure
reaches its floor.

Calibration is tested against the scores themselves: under a calibrated
score each outcome is Bernoulli(p), so the observed minus expected count has
variance ``sum p (1 - p)`` (a z-test overall, in a band or group; over score
deciles, the sum of squared standardised gaps is chi-square with 10 degrees
of freedom, the external-validation Hosmer-Lemeshow test).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from data.schema import ID_FIELD
from models.bands import BAND_NAMES
from pipeline.calibration_metrics import ECE_BINS, debiased_calibration_error
from pipeline.drift import SCORE, DecileCalibration, homogeneity_test
from pipeline.evaluation import NOT_RECORDED
from pipeline.monitoring_config import MonitoringConfig

CHECK_COLUMNS: tuple[str, ...] = (
    "kind",
    "subject",
    "figure",
    "floor",
    "p_value",
    "alert",
    "message",
)


@dataclass(frozen=True, slots=True)
class Check:
    """One monitored figure and its test.

    Attributes
    ----------
    kind
        ``drift``, ``missingness``, ``score_shift``, ``calibration``,
        ``calibration_band``, ``calibration_group``, ``calibration_deciles``,
        ``discrimination``, ``override_rate`` or ``override_gap``.
    subject
        What it is about: a feature, band or group, or ``all``.
    figure
        The size of the change, in the floor's units (sign kept where it
        means something: calibration gaps are mean predicted minus observed).
    floor
        The smallest ``|figure|`` that may alert.
    p_value
        Chance of a change at least this large from sampling noise alone;
        NaN when it could not be tested.
    detail
        What moved, in words, for the report.
    alert
        Set by :func:`decide`.
    """

    kind: str
    subject: str
    figure: float
    floor: float
    p_value: float
    detail: str
    alert: bool = False

    @property
    def message(self) -> str:
        """Return the check in one line, naming what moved."""
        return f"{self.kind} {self.subject}: {self.detail} (p = {self.p_value:.2g})"


def decide(checks: list[Check], false_alarm_rate: float) -> tuple[list[Check], float]:
    """Return the checks with their alert flags, and the per-check significance level.

    Only checks with a finite p-value count towards the Bonferroni share.
    """
    tested = sum(1 for c in checks if math.isfinite(c.p_value))
    level = false_alarm_rate / max(tested, 1)
    decided = [
        replace(
            c,
            alert=bool(math.isfinite(c.p_value) and c.p_value < level and abs(c.figure) >= c.floor),
        )
        for c in checks
    ]
    return decided, level


def checks_table(checks: list[Check]) -> pd.DataFrame:
    """Return the checks as a table, columns :data:`CHECK_COLUMNS`."""
    return pd.DataFrame(
        [
            {
                "kind": c.kind,
                "subject": c.subject,
                "figure": c.figure,
                "floor": c.floor,
                "p_value": c.p_value,
                "alert": c.alert,
                "message": c.message,
            }
            for c in checks
        ],
        columns=list(CHECK_COLUMNS),
    )


def drift_checks(drift: pd.DataFrame, config: MonitoringConfig) -> list[Check]:
    """Return a distribution check and a missingness check per row of a drift table."""
    checks = []
    for row in drift.itertuples(index=False):
        kind = "score_shift" if row.feature == SCORE else "drift"
        checks.append(
            Check(
                kind,
                str(row.feature),
                float(row.psi),
                config.psi_floor,
                float(row.p_value),
                f"PSI {row.psi:.3f}; bin {row.most_moved_bin} holds "
                f"{row.bin_share:.1%} (training {row.bin_share_reference:.1%})",
            )
        )
        if kind == "drift" and (row.missing > 0 or row.missing_reference > 0):
            checks.append(
                Check(
                    "missingness",
                    str(row.feature),
                    float(row.missing - row.missing_reference),
                    config.missingness_floor,
                    float(row.missing_p_value),
                    f"not assessed {row.missing:.1%} (training {row.missing_reference:.1%})",
                )
            )
    return checks


def _gap_check(kind: str, subject: str, y: np.ndarray, p: np.ndarray, floor: float) -> Check:
    """z-test that observed outcomes match calibrated probabilities ``p`` on average."""
    gap = float(p.mean() - y.mean())
    variance = float(np.sum(p * (1 - p)))
    p_value = (
        float(2 * stats.norm.sf(abs(gap) * len(y) / math.sqrt(variance)))
        if variance > 0
        else math.nan
    )
    return Check(
        kind,
        subject,
        gap,
        floor,
        p_value,
        f"mean predicted {p.mean():.3f}, observed {y.mean():.3f} (n = {len(y):,})",
    )


def decile_table(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> pd.DataFrame:
    """Return equal-mass score bins with observed and expected counts and their variance.

    The bins are those of :func:`pipeline.evaluation.reliability_bins`
    (sorted scores cut into runs of nearly equal size).
    """
    order = np.argsort(p, kind="stable")
    chunks = np.array_split(order, min(bins, len(order)))
    return pd.DataFrame(
        {
            "decile": np.arange(1, len(chunks) + 1),
            "n": [len(c) for c in chunks],
            "mean_predicted": [float(p[c].mean()) for c in chunks],
            "observed_rate": [float(y[c].mean()) for c in chunks],
            "expected": [float(p[c].sum()) for c in chunks],
            "observed": [int(y[c].sum()) for c in chunks],
            "variance": [float(np.sum(p[c] * (1 - p[c]))) for c in chunks],
        }
    )


def decile_change_check(
    y: np.ndarray, p: np.ndarray, reference: DecileCalibration, config: MonitoringConfig
) -> Check:
    """Test whether calibration by score decile changed since the test split.

    In each bin cut at the test split's score deciles the gap (mean ``p``
    minus observed) is compared with the test split's gap in the same bin:
    under no change their difference has variance ``V_now / n_now^2 +
    V_ref / n_ref^2`` (``V`` the sum of ``p (1 - p)``), and the sum of the
    squared standardised differences is chi-square with one degree of
    freedom per bin. Comparing with the test split rather than with perfect
    calibration leaves out the miscalibration the model already had when the
    gates passed it: the check says what changed. The figure is the
    root-mean-square change of the gaps with the noise taken out (as the
    debiased calibration error does).
    """
    n, excess, variance = DecileCalibration.sums(reference.edges, p, y.astype(np.float64))
    n_ref = np.asarray(reference.n, dtype=np.float64)
    both = (n > 0) & (n_ref > 0)
    n, excess, variance = n[both], excess[both], variance[both]
    n_ref = n_ref[both]
    change = excess / n - np.asarray(reference.excess)[both] / n_ref
    noise = variance / n**2 + np.asarray(reference.variance)[both] / n_ref**2
    statistic = float(np.sum(change**2 / noise))
    weights = n / n.sum()
    figure = float(np.sqrt(max(0.0, float(np.sum(weights * (change**2 - noise))))))
    worst = int(np.argmax(np.abs(change) / np.sqrt(noise)))
    return Check(
        "calibration_deciles",
        "all",
        figure,
        config.decile_calibration_floor,
        float(stats.chi2.sf(statistic, both.sum())),
        f"calibration by decile moved {figure:.3f} (root mean square, noise removed); "
        f"most in decile {int(np.flatnonzero(both)[worst]) + 1}: gap {change[worst]:+.3f} "
        "against the test split's",
    )


def calibration_checks(
    y: np.ndarray,
    p: np.ndarray,
    groups: Mapping[str, pd.Series],
    config: MonitoringConfig,
    reference: DecileCalibration | None = None,
) -> tuple[list[Check], pd.DataFrame]:
    """Return the calibration checks (overall, by band, deciles, groups) and the decile table.

    With the test split's decile calibration (``reference``) the decile
    check tests for a change since then (:func:`decile_change_check`);
    without it, against perfect calibration (Hosmer-Lemeshow, 10 bins).
    """
    checks = [_gap_check("calibration", "all", y, p, config.calibration_floor)]
    band = config.bands.band_index(p)
    for i, name in enumerate(BAND_NAMES):
        members = band == i
        if members.sum() >= config.min_group_size:
            checks.append(
                _gap_check(
                    "calibration_band", name, y[members], p[members], config.band_calibration_floor
                )
            )
    deciles = decile_table(y, p)
    variance = deciles["variance"].to_numpy()
    if reference is not None:
        checks.append(decile_change_check(y, p, reference, config))
    elif (variance > 0).all():
        statistic = float(np.sum((deciles["observed"] - deciles["expected"]) ** 2 / variance))
        p_value = float(stats.chi2.sf(statistic, len(deciles)))
        debiased = debiased_calibration_error(y, p)
        gaps = np.abs(deciles["mean_predicted"] - deciles["observed_rate"])
        worst = deciles.iloc[int(np.argmax(gaps))]
        checks.append(
            Check(
                "calibration_deciles",
                "all",
                debiased,
                config.decile_calibration_floor,
                p_value,
                f"debiased calibration error {debiased:.3f}; worst decile "
                f"{int(worst['decile'])} predicted {worst['mean_predicted']:.3f}, "
                f"observed {worst['observed_rate']:.3f}",
            )
        )
    for attribute, labels in groups.items():
        text = _labels(labels)
        for group in pd.unique(text):
            members = (text == group).to_numpy()
            if members.sum() >= config.min_group_size:
                checks.append(
                    _gap_check(
                        "calibration_group",
                        f"{attribute}={group}",
                        y[members],
                        p[members],
                        config.group_calibration_floor,
                    )
                )
    return checks, deciles


def _auc_standard_error(auc: float, n_positive: int, n_negative: int) -> float:
    """Hanley and McNeil's (1982) standard error of an AUC."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (n_positive - 1) * (q1 - auc**2) + (n_negative - 1) * (q2 - auc**2)
    ) / (n_positive * n_negative)
    return math.sqrt(max(variance, 0.0))


def discrimination_check(
    auc: float,
    y: np.ndarray,
    reference_auc: float,
    reference_positive: int,
    reference_negative: int,
    config: MonitoringConfig,
) -> Check | None:
    """One-sided test that the AUC fell below the test split's; None without a reference."""
    if not (math.isfinite(auc) and math.isfinite(reference_auc)):
        return None
    positive = int(y.sum())
    se = math.hypot(
        _auc_standard_error(auc, positive, len(y) - positive),
        _auc_standard_error(reference_auc, reference_positive, reference_negative),
    )
    drop = reference_auc - auc
    return Check(
        "discrimination",
        "all",
        drop,
        config.auc_drop_floor,
        float(stats.norm.sf(drop / se)) if se > 0 else math.nan,
        f"AUC {auc:.3f} against {reference_auc:.3f} on the test split",
    )


def _labels(values: pd.Series) -> pd.Series:
    series = values.reset_index(drop=True).astype(object)
    return series.where(series.notna(), NOT_RECORDED).map(str)


def _wilson(k: int, n: int) -> tuple[float, float]:
    """95 % Wilson interval of a share k / n."""
    if n == 0:
        return math.nan, math.nan
    z = 1.959964
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


def _rate_rows(by: pd.Series, overridden: pd.Series, name: str) -> pd.DataFrame:
    rows = []
    for level, part in overridden.groupby(by, sort=False, observed=True):
        k, n = int(part.sum()), len(part)
        low, high = _wilson(k, n)
        rows.append(
            {
                name: level,
                "decided": n,
                "overridden": k,
                "rate": k / n,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows, columns=[name, "decided", "overridden", "rate", "ci_low", "ci_high"])


def override_checks(
    decided: pd.DataFrame, groups: Mapping[str, pd.Series], config: MonitoringConfig
) -> tuple[list[Check], pd.DataFrame, pd.DataFrame]:
    """Return override checks and the override-rate tables by band and by group.

    ``decided`` holds one row per score with a decision: ``risk_band`` and
    ``overridden`` (bool); ``groups`` are aligned with it.
    """
    overridden = decided["overridden"].astype(bool).reset_index(drop=True)
    band = decided["risk_band"].astype("string").reset_index(drop=True)
    by_band = _rate_rows(band, overridden, "band")
    by_band = by_band.sort_values("band", key=lambda s: s.map(_band_order)).reset_index(drop=True)
    checks = []
    for row in by_band.itertuples(index=False):
        if row.decided >= config.min_group_size:
            checks.append(
                Check(
                    "override_rate",
                    str(row.band),
                    float(row.rate),
                    config.max_override_rate,
                    float(
                        stats.binom.sf(row.overridden - 1, row.decided, config.max_override_rate)
                    ),
                    f"{row.overridden:,} of {row.decided:,} decisions overridden ({row.rate:.1%})",
                )
            )
    tables = []
    for attribute, values in groups.items():
        labels = _labels(values)
        table = _rate_rows(labels, overridden, "group").assign(attribute=attribute)
        tables.append(table)
        large = table[table["decided"] >= config.min_group_size]
        if len(large) >= 2:
            _, _, p_value = homogeneity_test(
                large["overridden"].to_numpy(), (large["decided"] - large["overridden"]).to_numpy()
            )
            high, low = large.loc[large["rate"].idxmax()], large.loc[large["rate"].idxmin()]
            checks.append(
                Check(
                    "override_gap",
                    attribute,
                    float(high["rate"] - low["rate"]),
                    config.override_gap_floor,
                    p_value,
                    f"{high['group']} overridden {high['rate']:.1%}, "
                    f"{low['group']} {low['rate']:.1%}",
                )
            )
    by_group = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=["attribute", "group", "decided", "overridden", "rate"])
    )
    return checks, by_band, by_group


def _band_order(name: str) -> int:
    return BAND_NAMES.index(name) if name in BAND_NAMES else len(BAND_NAMES)


def first_matured(linked: pd.DataFrame) -> pd.DataFrame:
    """Return each person's first matured score: one outcome counts once."""
    matured = linked[linked["matured"]]
    return matured.sort_values("time", kind="stable").drop_duplicates(ID_FIELD, keep="first")
