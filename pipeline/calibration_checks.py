"""Calibration gates with a known false-alarm rate: a perfect model passes, a bad one fails.

A fixed ceiling on the ECE fails perfectly calibrated scores often: on about
1,150 people sampling noise alone gives an ECE near 0.03. The gate here asks
instead whether the scores could be perfectly calibrated, by tests whose
false-alarm rate is known:

- the ECE's noise test: outcomes are simulated from the scores' own
  probabilities, and ``p`` is the share of simulated ECEs reaching the
  observed one (a Monte Carlo p-value, exact for any sample size);
- Spiegelhalter's z (1986): the standardised difference between the Brier
  score and its expectation under calibration;
- the calibration slope: logistic recalibration of ``y`` on ``logit p``, with
  its interval from the Fisher information; it passes when the interval
  holds 1, or lies within tolerated bounds (a tiny, precisely measured
  deviation on a large sample is not a failure);
- a hard ceiling on the debiased calibration error, an effect size, not a
  test: it catches miscalibration too large to accept whatever the p-values.

Several tests on the same people inflate the false-alarm rate: three tests at
5 % each fail a perfect model in up to 15 % of samples. So the gate has one
family-wise false-alarm rate (:attr:`CalibrationGateConfig.false_alarm_rate`)
shared by Bonferroni among every test it runs, overall and in each group
judged: with the default 0.05, a perfectly calibrated model fails the
significance tests in at most 5 % of samples (fewer, since the tests are
positively correlated), whatever the number of groups. Groups are tested
against their own noise band (their own probabilities and size); a group below
the reporting minimum is "too few to judge", never a pass or a fail.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.stats import norm

from models.contract.tags import CALIBRATION_PASSED, calibration_tag
from pipeline.calibration_metrics import (
    ECE_BINS,
    calibration_slope_intercept,
    check_scores,
    debiased_calibration_error,
    expected_calibration_error,
)
from pipeline.names import slug

#: The scope of the whole-sample checks in a result.
OVERALL = "overall"
#: Status of a check that could not be computed (e.g. one outcome class).
NOT_ESTIMABLE = "not estimable"

# The significance tests run per scope judged; the ceiling is not a test.
_TESTS_PER_SCOPE = 3
# Draw matrices are built in chunks of about this many cells (8 bytes each).
_CELLS_PER_CHUNK = 2_000_000
_LOGIT_CLIP = 1e-6  # as pipeline.evaluation, so the slope here is the one it reports


class CalibrationGateConfig(BaseModel):
    """Thresholds of the calibration gate (the ``[calibration_gate]`` table of a job config).

    Attributes
    ----------
    false_alarm_rate
        Family-wise chance that perfectly calibrated scores fail the gate's
        significance tests. Split evenly (Bonferroni) over the three tests in
        every scope judged: with one overall scope and four groups each test
        runs at 0.05 / 15, i.e. the noise test passes at ``p >= 0.0033``,
        Spiegelhalter's at ``|z| < 2.94``, the slope on its 99.67 % interval.
    slope_bounds
        A slope interval that excludes 1 still passes when it lies inside these
        bounds. 0.8 and 1.25 are symmetric on the log scale and move a 30 %
        risk by at most about 4 points; they only matter on large samples,
        where the interval is narrow, and never add a false alarm.
    max_debiased_error
        Hard ceiling on :func:`pipeline.evaluation.debiased_calibration_error`
        (overall only). 0.07: in 400 simulated perfect models of 1,000 people
        the largest was 0.069 (99.9th percentile 0.066), so at 1,000+ people it
        adds next to no false alarms; in groups of 200 the 90th percentile is
        already 0.076, which is why groups are not held to it.
    min_group_size
        Groups with fewer people are reported as "too few to judge".
    noise_draws
        Simulated outcome sets for the noise test, at least. Its smallest
        p-value is ``1 / (1 + draws)``, so more are drawn when needed to keep
        it at most a fifth of the per-test threshold (many groups).
    seed
        Seeds the simulated outcomes; each scope gets its own stream.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    false_alarm_rate: float = Field(0.05, gt=0.0, lt=0.5)
    slope_bounds: tuple[float, float] = (0.8, 1.25)
    max_debiased_error: float = Field(0.07, gt=0.0, le=1.0)
    min_group_size: int = Field(200, ge=2)
    noise_draws: int = Field(1999, ge=99)
    seed: int = 0

    @model_validator(mode="after")
    def _bounds_hold_one(self) -> CalibrationGateConfig:
        low, high = self.slope_bounds
        if not 0.0 < low <= 1.0 <= high:
            raise ValueError(f"slope_bounds must satisfy 0 < low <= 1 <= high, got {low}, {high}")
        return self


@dataclass(frozen=True, slots=True)
class CalibrationCheck:
    """One figure of the gate, its limit and its verdict.

    Attributes
    ----------
    scope
        ``"overall"`` or ``"<attribute>=<group>"``.
    check
        ``noise_test``, ``spiegelhalter_z``, ``slope``, ``debiased_error``, or
        ``group_size`` for a group too small to judge.
    n
        People in the scope.
    value
        The figure (the p-value, z, slope or error; NaN when not estimable).
    limit
        The limit in words, e.g. ``"p >= 0.0033"``.
    passed
        True or False; None when not judged (too few people, not estimable).
    detail
        Anything else a reviewer needs (the interval, the observed ECE).
    """

    scope: str
    check: str
    n: int
    value: float
    limit: str
    passed: bool | None
    detail: str = ""

    @property
    def status(self) -> str:
        """Return ``"pass"``, ``"fail"``, or why the check was not judged."""
        if self.passed is None:
            return self.detail or NOT_ESTIMABLE
        return "pass" if self.passed else "fail"


@dataclass(frozen=True, slots=True)
class CalibrationGateResult:
    """Every check of the gate; it passes when none fails and one at least was judged."""

    checks: tuple[CalibrationCheck, ...]
    false_alarm_rate: float
    per_test_alpha: float

    @property
    def passed(self) -> bool:
        """Return whether the gate passes."""
        judged = [c.passed for c in self.checks if c.passed is not None]
        return bool(judged) and all(judged)

    def failures(self) -> tuple[CalibrationCheck, ...]:
        """Return the checks that failed."""
        return tuple(c for c in self.checks if c.passed is False)

    def as_rows(self) -> list[dict[str, object]]:
        """Return one row per check (scope, check, n, value, limit, status, detail)."""
        return [
            {
                "scope": c.scope,
                "check": c.check,
                "n": c.n,
                "value": c.value,
                "limit": c.limit,
                "status": c.status,
                "detail": c.detail,
            }
            for c in self.checks
        ]

    def to_tags(self) -> dict[str, str]:
        """Return the gate record as registry tags (``desist.calibration.*``).

        ``desist.calibration.passed`` holds the decision; every check adds
        ``<scope>.<check>`` (the figure, 6 significant digits),
        ``<scope>.<check>.limit`` and ``<scope>.<check>.status`` (and
        ``<scope>.<check>.detail`` when there is more to say), with the
        scope's characters outside ``[a-z0-9_]`` turned into ``_``.
        """
        tags = {
            calibration_tag(CALIBRATION_PASSED): str(self.passed).lower(),
            calibration_tag("false_alarm_rate"): f"{self.false_alarm_rate:g}",
            calibration_tag("per_test_alpha"): f"{self.per_test_alpha:.6g}",
        }
        for c in self.checks:
            stem = calibration_tag(f"{slug(c.scope)}.{c.check}")
            tags[stem] = "nan" if math.isnan(c.value) else f"{c.value:.6g}"
            tags[f"{stem}.limit"] = c.limit
            tags[f"{stem}.status"] = c.status
            if c.detail and c.detail != c.status:
                tags[f"{stem}.detail"] = c.detail
        return tags


def ece_noise_p_value(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    n_draws: int = 1999,
    seed: int | list[int] = 0,
    bins: int = ECE_BINS,
) -> tuple[float, float, float]:
    """Test "these scores are perfectly calibrated" by the ECE's own noise.

    Outcomes are drawn as Bernoulli(``p``) ``n_draws`` times, all at once (a
    draws x people matrix, in chunks), and each draw's ECE is computed over
    the same equal-mass bins as :func:`pipeline.evaluation.expected_calibration_error`
    (bins depend on ``p`` alone, so they are the same in every draw).

    Parameters
    ----------
    y, p
        Outcomes (0 or 1) and predicted probabilities.
    n_draws
        Simulated outcome sets.
    seed
        Seeds the draws.
    bins
        Equal-mass bins.

    Returns
    -------
    tuple of float
        ``(p_value, observed_ece, noise_floor)``: the Monte Carlo p-value
        ``(1 + #{simulated >= observed}) / (1 + n_draws)``, which under
        perfect calibration is at most ``a`` with probability at most ``a``;
        the observed ECE; the mean simulated ECE.
    """
    y_arr, p_arr = check_scores(y, p)
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws}")
    observed = expected_calibration_error(y_arr, p_arr, bins)
    simulated = _simulated_eces(p_arr, n_draws, np.random.default_rng(seed), bins)
    # Same terms summed in another order: a draw equal to the observed ECE reaches it.
    hits = int(np.sum(simulated >= observed - 1e-12))
    return (1 + hits) / (1 + n_draws), observed, float(simulated.mean())


def _simulated_eces(
    p: npt.NDArray[np.float64], n_draws: int, rng: np.random.Generator, bins: int
) -> npt.NDArray[np.float64]:
    order = np.argsort(p, kind="stable")
    p_sorted = p[order]
    chunks = np.array_split(np.arange(len(p)), min(bins, len(p)))
    starts = np.array([c[0] for c in chunks])
    sizes = np.array([len(c) for c in chunks], dtype=np.float64)
    mean_p = np.add.reduceat(p_sorted, starts) / sizes
    weights = sizes / len(p)
    per_chunk = max(1, _CELLS_PER_CHUNK // len(p))
    out = []
    for begin in range(0, n_draws, per_chunk):
        size = min(per_chunk, n_draws - begin)
        # One row per simulated outcome set; single precision halves the cost of the draws.
        draws = rng.random((size, len(p)), dtype=np.float32) < p_sorted.astype(np.float32)
        observed = np.add.reduceat(draws, starts, axis=1, dtype=np.int64) / sizes
        out.append(np.abs(observed - mean_p) @ weights)
    return np.concatenate(out)


def spiegelhalter_z(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Return Spiegelhalter's z: the Brier score against its expectation under calibration.

    ``z = sum((y - p)(1 - 2p)) / sqrt(sum((1 - 2p)^2 p (1 - p)))`` is standard
    normal when ``y`` is drawn from ``p``, so ``|z| >= 1.96`` happens in 5 %
    of perfectly calibrated samples. It is blind where scores sit at 0.5
    (the weight ``1 - 2p`` vanishes), which is why it is not the only test.

    Returns
    -------
    float
        z; NaN when every score is 0, 0.5 or 1 (nothing to compare with).
    """
    y_arr, p_arr = check_scores(y, p)
    weight = 1.0 - 2.0 * p_arr
    variance = float(np.sum(weight**2 * p_arr * (1.0 - p_arr)))
    if variance <= 0.0:
        return math.nan
    return float(np.sum((y_arr - p_arr) * weight) / math.sqrt(variance))


def calibration_slope_interval(
    y: npt.ArrayLike, p: npt.ArrayLike, level: float = 0.95
) -> tuple[float, float, float]:
    """Return the calibration slope and its Wald interval from the Fisher information.

    The slope is :func:`pipeline.evaluation.calibration_slope_intercept`'s
    (``logit P(y = 1) = a + b logit p``); its variance is the slope's entry of
    the inverse Fisher information ``(X' W X)^-1`` at the fit, with
    ``W = mu (1 - mu)``.

    Returns
    -------
    tuple of float
        ``(slope, low, high)``; all NaN when the fit has no finite solution.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    y_arr, p_arr = check_scores(y, p)
    slope, intercept = calibration_slope_intercept(y_arr, p_arr)
    if math.isnan(slope):
        return math.nan, math.nan, math.nan
    clipped = np.clip(p_arr, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    x = np.log(clipped / (1 - clipped))
    mu = 1.0 / (1.0 + np.exp(-(intercept + slope * x)))
    w = mu * (1.0 - mu)
    information = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
    try:
        variance = float(np.linalg.inv(information)[1, 1])
    except np.linalg.LinAlgError:
        return slope, math.nan, math.nan
    half = float(norm.ppf(0.5 + level / 2)) * math.sqrt(max(variance, 0.0))
    return slope, slope - half, slope + half


def evaluate_calibration_gate(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    config: CalibrationGateConfig,
    groups: Mapping[str, npt.ArrayLike | pd.Series] | None = None,
) -> CalibrationGateResult:
    """Run every check of the calibration gate, overall and in each group.

    Parameters
    ----------
    y, p
        Outcomes (0 or 1) and predicted probabilities on the judged rows (the
        test split, or out of fold).
    config
        Thresholds.
    groups
        Audited attributes aligned with ``y`` (e.g. ``{"race": ..., "sex": ...}``);
        missing values are left out of every group of that attribute.

    Returns
    -------
    CalibrationGateResult
        One check per figure; groups under ``config.min_group_size`` get a
        single ``group_size`` check, "too few to judge (n = k)", not judged.
    """
    y_arr, p_arr = check_scores(y, p)
    scopes: list[tuple[str, npt.NDArray[np.bool_]]] = [(OVERALL, np.ones(len(y_arr), bool))]
    for attribute, values in (groups or {}).items():
        labels = pd.Series(np.asarray(values, dtype=object))
        if len(labels) != len(y_arr):
            raise ValueError(f"group {attribute!r} has {len(labels)} values, not {len(y_arr)}")
        present = labels.dropna().map(str)
        for group in sorted(present.unique()):
            mask = np.zeros(len(y_arr), bool)
            mask[present.index[present == group]] = True
            scopes.append((f"{attribute}={group}", mask))
    judged = [s for s in scopes if s[0] == OVERALL or s[1].sum() >= config.min_group_size]
    alpha = config.false_alarm_rate / (_TESTS_PER_SCOPE * len(judged))
    checks: list[CalibrationCheck] = []
    for index, (scope, mask) in enumerate(scopes):
        n = int(mask.sum())
        if scope != OVERALL and n < config.min_group_size:
            note = f"too few to judge (n = {n})"
            limit = f"n >= {config.min_group_size}"
            checks.append(CalibrationCheck(scope, "group_size", n, float(n), limit, None, note))
            continue
        checks += _scope_checks(scope, y_arr[mask], p_arr[mask], alpha, config, index)
    return CalibrationGateResult(tuple(checks), config.false_alarm_rate, alpha)


def _scope_checks(
    scope: str,
    y: npt.NDArray[np.int64],
    p: npt.NDArray[np.float64],
    alpha: float,
    config: CalibrationGateConfig,
    index: int,
) -> list[CalibrationCheck]:
    n = len(y)
    p_value, ece, floor = ece_noise_p_value(
        y, p, n_draws=max(config.noise_draws, math.ceil(5 / alpha) - 1), seed=[config.seed, index]
    )
    noise = CalibrationCheck(
        scope,
        "noise_test",
        n,
        p_value,
        f"p >= {alpha:.3g}",
        p_value >= alpha,
        f"ECE {ece:.4f}; noise alone averages {floor:.4f} on these scores",
    )
    z_limit = float(norm.ppf(1 - alpha / 2))
    z = spiegelhalter_z(y, p)
    spiegelhalter = CalibrationCheck(
        scope,
        "spiegelhalter_z",
        n,
        z,
        f"|z| < {z_limit:.3g}",
        None if math.isnan(z) else abs(z) < z_limit,
        NOT_ESTIMABLE if math.isnan(z) else "",
    )
    out = [noise, spiegelhalter, _slope_check(scope, y, p, 1 - alpha, config.slope_bounds)]
    if scope == OVERALL:
        error = debiased_calibration_error(y, p)
        out.append(
            CalibrationCheck(
                scope,
                "debiased_error",
                n,
                error,
                f"<= {config.max_debiased_error:g}",
                None if math.isnan(error) else error <= config.max_debiased_error,
                NOT_ESTIMABLE if math.isnan(error) else "",
            )
        )
    return out


def _slope_check(
    scope: str,
    y: npt.NDArray[np.int64],
    p: npt.NDArray[np.float64],
    level: float,
    bounds: tuple[float, float],
) -> CalibrationCheck:
    slope, low, high = calibration_slope_interval(y, p, level)
    bound_low, bound_high = bounds
    limit = f"{level:.2%} interval holds 1 or lies in [{bound_low:g}, {bound_high:g}]"
    if math.isnan(low):
        return CalibrationCheck(scope, "slope", len(y), slope, limit, None, NOT_ESTIMABLE)
    holds_one = low <= 1.0 <= high
    within = bound_low <= low and high <= bound_high
    detail = f"interval {low:.3f} to {high:.3f}"
    if within and not holds_one:
        detail += " (excludes 1, inside the tolerated bounds)"
    return CalibrationCheck(scope, "slope", len(y), slope, limit, holds_one or within, detail)
