"""The calibration gate: a perfect model passes, a miscalibrated one fails, groups judged alone.

Binomial margins of the simulated rates (seeds fixed, so each run is identical):
- perfect models, 200 draws, asserted pass rate >= 90 %: the Bonferroni split
  bounds the false-alarm rate of the tests at 5 %, and the ceiling adds next
  to none at 1,000+ people, so the expected pass rate is >= 95 %; its binomial
  sd over 200 draws is 1.5 points, and 90 % lies 3.2 sd below.
- miscalibrated models, 100 draws each, asserted fail rate >= 90 %: every draw
  fails (100 of 100), and if the true rate were only 90 % that would happen
  with probability 0.9**100 = 3e-5; the one-sided 95 % lower bound on the true
  rate after 100 of 100 is 97 %.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from models.contract.tags import calibration_tag
from pipeline.calibration_checks import (
    OVERALL,
    CalibrationGateConfig,
    calibration_slope_interval,
    ece_noise_p_value,
    evaluate_calibration_gate,
    spiegelhalter_z,
)
from pipeline.calibration_metrics import calibration_slope_intercept, expected_calibration_error


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _cohort(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True log-odds near a 45 % base rate (as Broward), probabilities, outcomes drawn from them."""
    logit = rng.normal(-0.2, 1.0, n)
    p = _sigmoid(logit)
    return logit, p, (rng.random(n) < p).astype(int)


# Fewer noise draws than the default keep the simulations to seconds; the gate still
# draws at least 5 / alpha - 1 (299 for the overall tests at 0.05 / 3, 1,499 with
# four groups) so its smallest p-value stays a fifth of the threshold.
FAST = CalibrationGateConfig(noise_draws=99)


def test_config_is_frozen_and_forbids_unknown_fields() -> None:
    config = CalibrationGateConfig()
    with pytest.raises(ValidationError):
        CalibrationGateConfig(max_ece=0.03)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        CalibrationGateConfig(slope_bounds=(1.1, 1.3))
    with pytest.raises(ValidationError):
        config.false_alarm_rate = 0.2  # type: ignore[misc]


def test_noise_draws_match_the_ece_of_evaluation() -> None:
    # The vectorised ECEs use the same equal-mass bins as expected_calibration_error:
    # outcomes equal to the scores' own draw give p = 1 / (1 + draws) only if the
    # observed ECE is beyond all of them; an ECE of 0 is reached by every draw.
    rng = np.random.default_rng(3)
    _, p, y = _cohort(rng, 1_003)
    p_value, observed, floor = ece_noise_p_value(y, p, n_draws=199, seed=1)
    assert observed == pytest.approx(expected_calibration_error(y, p))
    assert 0.01 < floor < 0.06
    assert 1 / 200 <= p_value <= 1
    far = np.where(p > 0.5, 0, 1)  # outcomes opposite to the scores
    assert ece_noise_p_value(far, p, n_draws=199)[0] == pytest.approx(1 / 200)


def test_noise_p_value_is_seeded() -> None:
    rng = np.random.default_rng(4)
    _, p, y = _cohort(rng, 500)
    assert ece_noise_p_value(y, p, seed=7) == ece_noise_p_value(y, p, seed=7)


def test_spiegelhalter_z_is_standard_normal_under_calibration() -> None:
    rng = np.random.default_rng(5)
    zs = np.array([spiegelhalter_z(y, p) for _, p, y in (_cohort(rng, 800) for _ in range(300))])
    # Mean within 3 standard errors (1/sqrt(300) = 0.058) of 0, sd within about 10 % of 1.
    assert abs(zs.mean()) < 0.18
    assert 0.88 < zs.std() < 1.12
    assert math.isnan(spiegelhalter_z([0, 1], [0.5, 0.5]))


def test_slope_interval_is_centred_on_evaluations_slope_and_narrows_with_n() -> None:
    rng = np.random.default_rng(6)
    _, p, y = _cohort(rng, 2_000)
    slope, low, high = calibration_slope_interval(y, p)
    assert slope == pytest.approx(calibration_slope_intercept(y, p)[0])
    assert low < slope < high
    _, p_big, y_big = _cohort(rng, 20_000)
    _, low_big, high_big = calibration_slope_interval(y_big, p_big)
    # Interval width shrinks like 1 / sqrt(n): ten times the people, about 0.32 times the width.
    assert (high_big - low_big) / (high - low) == pytest.approx(10**-0.5, rel=0.15)
    assert all(math.isnan(v) for v in calibration_slope_interval([0, 0, 0], [0.2, 0.3, 0.4]))


@pytest.mark.slow
def test_perfect_model_passes_the_combined_gate_in_90_percent_of_draws() -> None:
    rng = np.random.default_rng(20261201)
    passed = []
    for draw in range(200):
        _, p, y = _cohort(rng, (1_000, 1_500, 2_000)[draw % 3])
        passed.append(evaluate_calibration_gate(y, p, FAST).passed)
    assert np.mean(passed) >= 0.90


@pytest.mark.slow
@pytest.mark.parametrize(
    "miscalibrate",
    [
        pytest.param(lambda logit, p: np.clip(p + 0.05, 0.0, 1.0), id="shift+0.05"),
        pytest.param(lambda logit, p: _sigmoid(0.6 * logit), id="tempered-x0.6"),
        pytest.param(lambda logit, p: _sigmoid(1.6 * logit), id="tempered-x1.6"),
    ],
)
def test_miscalibrated_model_fails_in_90_percent_of_draws(miscalibrate) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(14)
    failed = []
    for _ in range(100):
        logit, p, y = _cohort(rng, 5_000)
        failed.append(not evaluate_calibration_gate(y, miscalibrate(logit, p), FAST).passed)
    assert np.mean(failed) >= 0.90


def test_every_figure_has_its_limit_and_the_record_is_ready_for_the_registry() -> None:
    rng = np.random.default_rng(8)
    _, p, y = _cohort(rng, 1_200)
    result = evaluate_calibration_gate(y, p, FAST)
    assert [c.check for c in result.checks] == [
        "noise_test",
        "spiegelhalter_z",
        "slope",
        "debiased_error",
    ]
    assert result.per_test_alpha == pytest.approx(0.05 / 3)
    rows = result.as_rows()
    assert {r["scope"] for r in rows} == {OVERALL}
    assert all(r["limit"] and r["status"] in ("pass", "fail") for r in rows)
    tags = result.to_tags()
    assert tags[calibration_tag("passed")] == str(result.passed).lower()
    assert tags[calibration_tag("overall.spiegelhalter_z.limit")] == "|z| < 2.39"
    assert tags[calibration_tag("overall.noise_test.limit")] == "p >= 0.0167"
    assert all(len(k) < 250 and len(v) < 500 for k, v in tags.items())


def test_large_miscalibration_fails_the_ceiling_even_when_tests_lack_power() -> None:
    # 60 people: too few for the tests to be sure, but a 0.3 gap is no noise.
    rng = np.random.default_rng(9)
    _, p, y = _cohort(rng, 60)
    result = evaluate_calibration_gate(y, np.clip(p + 0.3, 0, 1), FAST)
    ceiling = next(c for c in result.checks if c.check == "debiased_error")
    assert ceiling.passed is False
    assert not result.passed


def test_a_small_slope_deviation_on_a_large_sample_passes_inside_the_bounds() -> None:
    rng = np.random.default_rng(10)
    logit, _, y = _cohort(rng, 200_000)
    _, low, high = calibration_slope_interval(y, _sigmoid(logit / 1.05))
    assert not low <= 1 <= high  # the interval excludes 1 ...
    result = evaluate_calibration_gate(y, _sigmoid(logit / 1.05), FAST)
    check = next(c for c in result.checks if c.check == "slope")
    assert check.passed is True  # ... but lies inside [0.8, 1.25]
    assert "inside the tolerated bounds" in check.detail


def test_groups_are_judged_on_their_own_noise_and_tiny_ones_are_not_judged() -> None:
    rng = np.random.default_rng(11)
    n = 4_000
    _, p, y = _cohort(rng, n)
    sex = np.where(rng.random(n) < 0.5, "female", "male").astype(object)
    sex[:2] = "other"  # two people: too few to judge
    sex[2:5] = None  # not recorded: in no group
    result = evaluate_calibration_gate(y, p, FAST, {"sex": sex})
    tiny = [c for c in result.checks if c.scope == "sex=other"]
    assert len(tiny) == 1 and tiny[0].passed is None
    assert tiny[0].status == "too few to judge (n = 2)"
    scopes = {c.scope for c in result.checks}
    assert scopes == {OVERALL, "sex=female", "sex=male", "sex=other"}
    # Three scopes judged, three tests each, share the 5 % family-wise rate.
    assert result.per_test_alpha == pytest.approx(0.05 / 9)
    noise = next(c for c in result.checks if c.scope == "sex=male" and c.check == "noise_test")
    assert noise.limit == "p >= 0.00556"
    assert result.passed

    # Over-state the women's risk by 8 points and under-state the men's: overall nearly
    # calibrated, each group off.
    skewed = np.clip(np.where(sex == "female", p + 0.08, p - 0.08), 0.0, 1.0)
    result = evaluate_calibration_gate(y, skewed, FAST, {"sex": sex})
    failed_scopes = {c.scope for c in result.failures()}
    assert {"sex=female", "sex=male"} <= failed_scopes
    assert not result.passed


@pytest.mark.slow
def test_perfect_model_with_groups_passes_in_90_percent_of_draws() -> None:
    # Groups of about 300 and 900 people (as Broward's women and men), each on its own band.
    rng = np.random.default_rng(12)
    passed = []
    for _ in range(100):
        _, p, y = _cohort(rng, 1_200)
        sex = rng.choice(np.array(["f", "m"], dtype=object), size=1_200, p=[0.25, 0.75])
        passed.append(evaluate_calibration_gate(y, p, FAST, {"sex": sex}).passed)
    # 100 draws: the sd at a 95 % rate is 2.2 points; 90 % lies 2.3 sd below.
    assert np.mean(passed) >= 0.90
