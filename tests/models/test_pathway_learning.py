"""The pathway model's learning parts: doubly robust pseudo-outcomes recover a known effect."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold

from models.pathway_learning import choose_final_stage, doubly_robust_outcomes
from tests.support.referrals import two_programme_cohort


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


def _interacting_risk(x: np.ndarray, referrals: np.ndarray) -> np.ndarray:
    # Each programme alone lowers risk by 0.1; together by 0.1 + 0.05 (the second counts half).
    count = referrals.sum(axis=1)
    return 0.5 - 0.1 * np.minimum(count, 1) - 0.05 * (count >= 2)


def test_the_alone_contrast_recovers_the_effect_alone_when_a_second_referral_counts_half() -> None:
    x, referrals, y, propensity = two_programme_cohort(_interacting_risk)
    observed = doubly_robust_outcomes(_interacting_risk, x, referrals, y, propensity, 0.02)
    alone = doubly_robust_outcomes(_interacting_risk, x, referrals, y, propensity, 0.02, alone=True)
    # With the other referral as it was (60% have it), a referral adds 0.6 x 0.05 + 0.4 x 0.1.
    assert observed.reduction[:, 0].mean() == pytest.approx(0.07, abs=0.015)
    assert alone.reduction[:, 0].mean() == pytest.approx(0.1, abs=0.015)
    np.testing.assert_allclose(alone.untreated_risk[:, 0], 0.5)


@pytest.mark.parametrize("truth", ["relative", "absolute"])
def test_the_final_stage_scale_follows_the_out_of_fold_dr_loss(truth: str) -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    x = rng.uniform(-1, 1, size=(n, 2))
    # Risk levels the effect may or may not follow, set by what the final stage
    # does not read (as the other referrals set the risk without a programme):
    # only the right scale can fit the effect from x.
    untreated = 0.1 + 0.8 * rng.random(n)
    # Relative: a third of the risk, whatever x[:, 1]; absolute: 0.1 or 0.2 by x[:, 1] alone.
    effect = untreated / 3 if truth == "relative" else 0.1 + 0.1 * (x[:, 1] > 0)
    pseudo = effect + rng.normal(0.0, 0.3, n)

    def make() -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(max_leaf_nodes=3, max_iter=50, random_state=0)

    splits = list(KFold(2, shuffle=True, random_state=0).split(x))
    usable = np.ones(n, dtype=bool)
    stage = choose_final_stage(make, x, pseudo, untreated, usable, splits)
    assert stage.scale == truth
    assert set(stage.loss) == {"relative", "absolute"}


def test_without_evidence_either_way_the_final_stage_keeps_the_absolute_scale() -> None:
    rng = np.random.default_rng(8)
    n = 20_000
    x = rng.uniform(-1, 1, size=(n, 2))
    untreated = np.full(n, 0.4)  # one risk level: the two scales fit the same thing

    def make() -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(max_leaf_nodes=3, max_iter=50, random_state=0)

    splits = list(KFold(2, shuffle=True, random_state=0).split(x))
    pseudo = 0.05 + rng.normal(0.0, 1.0, n)
    stage = choose_final_stage(make, x, pseudo, untreated, np.ones(n, dtype=bool), splits)
    assert stage.scale == "absolute"
