"""The pathway model's learning parts: doubly robust pseudo-outcomes recover a known effect."""

from __future__ import annotations

import numpy as np
import pytest

from models.pathway_learning import doubly_robust_outcomes


def _trial(seed: int, n: int = 40_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1))
    propensity = np.column_stack([np.where(x[:, 0] > 0, 0.7, 0.2), np.full(n, 0.5)])
    referrals = (rng.random((n, 2)) < propensity).astype(float)
    y = (rng.random(n) < _true_risk(x, referrals)).astype(float)
    return x, referrals, np.column_stack([y, propensity])


def _true_risk(x: np.ndarray, referrals: np.ndarray) -> np.ndarray:
    # Programme 0 lowers risk by 0.1 points, programme 1 does nothing; risk rises with x.
    return 0.45 + 0.15 * np.tanh(x[:, 0]) - 0.1 * referrals[:, 0]


@pytest.mark.parametrize("outcome_model", ["true", "wrong"])
def test_pseudo_outcomes_average_to_the_effect_with_a_true_or_a_wrong_outcome_model(
    outcome_model: str,
) -> None:
    x, referrals, extra = _trial(seed=6)
    y, propensity = extra[:, 0], extra[:, 1:]

    def wrong(x: np.ndarray, referrals: np.ndarray) -> np.ndarray:
        return np.full(x.shape[0], 0.4)  # ignores the person and the referral

    risk = _true_risk if outcome_model == "true" else wrong
    scored = doubly_robust_outcomes(risk, x, referrals, y, propensity, overlap=0.02)
    # Right propensities: the mean reduction is right even with a wrong outcome model.
    assert scored.reduction[:, 0].mean() == pytest.approx(0.1, abs=0.02)
    assert scored.reduction[:, 1].mean() == pytest.approx(0.0, abs=0.02)
    if outcome_model == "true":
        without = referrals.copy()
        without[:, 0] = 0
        np.testing.assert_allclose(scored.untreated_risk[:, 0], _true_risk(x, without))
    np.testing.assert_array_equal(scored.propensity, propensity)
