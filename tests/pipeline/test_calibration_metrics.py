from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline import calibration_metrics
from pipeline.calibration_metrics import (
    calibration_slope_intercept,
    check_scores,
    debiased_calibration_error,
    ece_noise_floor,
    ece_noise_test,
    expected_calibration_error,
    reliability_bins,
)
from tests.support.scores import calibrated


def test_scores_shrunk_toward_one_half_have_slope_above_one() -> None:
    y, p = calibrated(50_000, seed=3)
    shrunk = 0.5 + 0.5 * (p - 0.5)
    slope, _ = calibration_slope_intercept(y, shrunk)
    assert slope > 1.3
    assert expected_calibration_error(y, shrunk) > expected_calibration_error(y, p)


def test_slope_and_intercept_match_an_unpenalised_logistic_fit() -> None:
    from sklearn.linear_model import LogisticRegression

    y, p = calibrated(5_000, seed=4)
    p = np.clip(p * 1.3, 0, 1)
    slope, intercept = calibration_slope_intercept(y, p)
    x = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    fit = LogisticRegression(C=np.inf, max_iter=1_000).fit(x[:, None], y)
    assert slope == pytest.approx(fit.coef_[0, 0], abs=1e-3)
    assert intercept == pytest.approx(fit.intercept_[0], abs=1e-3)


def test_slope_is_nan_when_only_one_outcome_occurs() -> None:
    slope, intercept = calibration_slope_intercept(np.zeros(50), np.linspace(0.1, 0.9, 50))
    assert math.isnan(slope) and math.isnan(intercept)


def test_reliability_bins_have_equal_mass() -> None:
    y, p = calibrated(1_005, seed=15)
    table = reliability_bins(y, p)
    assert len(table) == 10
    assert set(table["n"]) == {100, 101}
    assert table["mean_predicted"].is_monotonic_increasing
    assert len(reliability_bins([0, 1, 1], [0.2, 0.5, 0.9])) == 3


def test_debiased_error_removes_the_noise_a_calibrated_score_shows() -> None:
    plain, debiased = [], []
    for seed in range(20):
        y, p = calibrated(1_200, seed=100 + seed)
        plain.append(expected_calibration_error(y, p))
        debiased.append(debiased_calibration_error(y, p))
    # ~1,200 people: the plain ECE of a perfect score sits near 0.03, the debiased near 0.
    assert np.mean(plain) > 0.02
    assert np.mean(debiased) < 0.5 * np.mean(plain)


def test_debiased_error_still_sees_a_real_gap() -> None:
    y, p = calibrated(50_000, seed=4)
    shifted = np.clip(p + 0.08, 0, 1)
    assert debiased_calibration_error(y, shifted) == pytest.approx(0.08, abs=0.01)
    assert math.isnan(debiased_calibration_error([0, 1, 1], [0.2, 0.5, 0.7], bins=3))


def test_noise_test_tells_a_calibrated_score_from_a_shifted_one() -> None:
    y, p = calibrated(2_000, seed=5)
    floor, share = ece_noise_test(y, p, n_draws=100, seed=1)
    assert floor == pytest.approx(ece_noise_floor(p, n_draws=100, seed=1))
    assert share > 0.05
    _, shifted_share = ece_noise_test(y, np.clip(p + 0.06, 0, 1), n_draws=100, seed=1)
    assert shifted_share < 0.01


@pytest.mark.parametrize(("people", "draws"), [(7, 3), (2_003, 40), (30_000, 3)])
def test_the_noise_floor_is_that_of_one_draw_at_a_time(
    people: int, draws: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The draws are counted all at once, in chunks; each must be the ECE of its own
    # outcomes, drawn as one Bernoulli(p) set after another, to the last bit.
    _, p = calibrated(people, seed=6)
    p = np.round(p, 2)  # ties across bin edges
    rng = np.random.default_rng([2, 3])
    one_by_one = [
        expected_calibration_error((rng.random(people) < p).astype(int), p) for _ in range(draws)
    ]
    monkeypatch.setattr(calibration_metrics, "_NOISE_CELLS", 2 * people)  # several chunks
    assert calibration_metrics._noise_draws(p, draws, seed=2).tolist() == one_by_one
    assert ece_noise_floor(p, n_draws=draws, seed=2) == float(np.mean(one_by_one))


def test_check_scores_returns_int_outcomes_and_float_probabilities() -> None:
    y, p = check_scores([True, False, True], [0.9, 0.0, 1.0])
    assert y.dtype == np.int64 and p.dtype == np.float64
    assert y.tolist() == [1, 0, 1] and p.tolist() == [0.9, 0.0, 1.0]


def test_ece_is_the_weighted_gap_of_the_reliability_bins() -> None:
    y, p = calibrated(1_000, seed=16)
    table = reliability_bins(y, p, bins=4)
    gaps = (table["mean_predicted"] - table["observed_rate"]).abs()
    expected = float((gaps * table["n"]).sum() / table["n"].sum())
    assert expected_calibration_error(y, p, bins=4) == pytest.approx(expected, abs=1e-12)
