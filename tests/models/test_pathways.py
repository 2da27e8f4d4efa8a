from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from data.schema import DEFAULT_FEATURES, PRINCES_TRUST, PROGRAMMES, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort, probability_under
from models.pathway_policy import served_choice
from models.pathways import PathwayEffectModel, PathwayEstimates, recommendations

Fitted = tuple[PathwayEffectModel, PathwayEstimates, pd.DataFrame, pd.DataFrame]


def _fit(config: SynthConfig) -> Fitted:
    cohort, truth = generate_cohort(config)
    half = len(cohort) * 2 // 3
    model = PathwayEffectModel(DEFAULT_FEATURES, max_iter=80).fit(
        cohort.iloc[:half], cohort[TARGET_FIELD].iloc[:half].to_numpy(dtype=int)
    )
    test = cohort.iloc[half:]
    return model, model.estimate(test), test, truth.iloc[half:]


@pytest.fixture(scope="module")
def no_effects() -> Fitted:
    return _fit(SynthConfig(rows=15_000, seed=41, effect_scale=0.0))


@pytest.fixture(scope="module")
def trial() -> Fitted:
    return _fit(SynthConfig(rows=15_000, seed=42, referrals="randomised"))


def test_no_true_effects_means_no_confident_recommendation(no_effects: Fitted) -> None:
    model, estimates, test, _ = no_effects
    assert estimates.recommended.any(axis=1).mean() < 0.05
    pseudo = model.pseudo_outcomes(test, test[TARGET_FIELD].to_numpy(dtype=int))
    for j in range(len(PROGRAMMES)):
        values = pseudo[estimates.eligible[:, j], j]
        assert abs(values.mean()) < 3 * values.std(ddof=1) / np.sqrt(values.size)


def _true_effect_given_other_referrals(
    test: pd.DataFrame, truth: pd.DataFrame, k: str
) -> np.ndarray:
    """Each person's true reduction from programme ``k``, other referrals as they were."""
    referred = test[[f"referred_{p}" for p in PROGRAMMES]].to_numpy(dtype=int)
    relative = truth[[f"relative_effect_{p}" for p in PROGRAMMES]].to_numpy()
    p0 = truth["p_untreated"].to_numpy()
    j = PROGRAMMES.index(k)
    without, with_k = referred.copy(), referred.copy()
    without[:, j], with_k[:, j] = 0, 1
    world = SynthConfig()  # the fixtures' world: the default
    return probability_under(p0, relative, without, world) - probability_under(
        p0, relative, with_k, world
    )


@pytest.mark.parametrize("programme", PROGRAMMES)
def test_randomised_referrals_recover_the_average_effects(trial: Fitted, programme: str) -> None:
    model, estimates, test, truth = trial
    j = PROGRAMMES.index(programme)
    pool = estimates.eligible[:, j]
    pseudo = model.pseudo_outcomes(test, test[TARGET_FIELD].to_numpy(dtype=int))[pool, j]
    true = _true_effect_given_other_referrals(test, truth, programme)[pool]
    # Within three standard errors of the doubly robust mean (about 0.04 here).
    standard_error = pseudo.std(ddof=1) / np.sqrt(pseudo.size)
    assert abs(pseudo.mean() - true.mean()) < 3 * standard_error


def test_the_largest_effects_are_found(trial: Fitted) -> None:
    _, estimates, _, _truth = trial
    order = np.argsort(-estimates.effect.mean(axis=0))
    assert PROGRAMMES[order[0]] == "education_employment"


def test_princes_trust_only_for_ages_16_to_25(trial: Fitted) -> None:
    model, estimates, test, _ = trial
    j = PROGRAMMES.index(PRINCES_TRUST)
    older = test["age"].to_numpy(dtype=float) > 25
    assert not estimates.eligible[older, j].any()
    assert estimates.eligible[~older, j].all()
    assert not estimates.recommended[older, j].any()
    # Whether 16-25s get it with confidence depends on the fixture's power;
    # with every Prince's Trust group confidently above zero, age decides.
    confident = copy.copy(model)
    floors = model.group_floor_[PRINCES_TRUST]
    confident.group_floor_ = {**model.group_floor_, PRINCES_TRUST: np.ones_like(floors)}
    forced = confident.estimate(test)
    assert not forced.recommended[older, j].any()
    assert forced.recommended[~older, j].any()


def test_recommendations_are_ranked_and_name_their_needs(trial: Fitted) -> None:
    _, estimates, test, _ = trial
    people = recommendations(estimates, test.head(200))
    assert any(people)
    for row, person in enumerate(people):
        sizes = [r.estimated_reduction for r in person]
        assert sizes == sorted(sizes, reverse=True)
        for item in person:
            assert item.estimated_reduction > 0 and item.interval[0] > 0
            for need in item.needs:
                assert test.iloc[row][need] > 0
            # Per-person figures: the risk without and with, and an interval
            # around the person's own estimate.
            assert item.risk_with == pytest.approx(item.risk_without - item.estimated_reduction)
            low, high = item.person_interval
            assert low <= item.estimated_reduction <= high
        assert sum(item.first_choice for item in person) <= 1


def test_overlap_failures_are_flagged_not_recommended(trial: Fitted) -> None:
    model, estimates, _, _ = trial
    outside = ~estimates.in_overlap
    assert not (estimates.recommended & outside).any()
    low, high = model.overlap, 1 - model.overlap
    assert np.array_equal(outside, (estimates.propensity < low) | (estimates.propensity > high))


def test_missing_referral_columns_are_refused() -> None:
    cohort, _ = generate_cohort(SynthConfig(rows=300, seed=1))
    with pytest.raises(ValueError, match="referral columns"):
        PathwayEffectModel(DEFAULT_FEATURES).fit(
            cohort.drop(columns=["referred_health"]), cohort[TARGET_FIELD].to_numpy(dtype=int)
        )


def test_a_few_rows_get_the_same_figures_as_many(trial: Fitted) -> None:
    model, estimates, test, _ = trial
    few = model.estimate(test.head(7))  # compiled trees
    assert np.allclose(few.effect, estimates.effect[:7])
    assert np.allclose(few.propensity, estimates.propensity[:7])
    assert np.allclose(few.person_low, estimates.person_low[:7])
    assert np.array_equal(few.recommended, estimates.recommended[:7])


def test_selection_is_recorded_and_truth_free(trial: Fitted) -> None:
    model, _, _, _ = trial
    assert model.final_stage_ in {"dr", "r"}
    assert (
        f"{model.final_stage_}/{model.min_samples_leaf_}/{model.groups_}/{model.switch_margin_}"
        in (model.selection_)
    )
    assert model.default_programme_ == PROGRAMMES.index("education_employment")


def test_no_effect_world_offers_no_default_and_serves_almost_nothing(no_effects: Fitted) -> None:
    model, estimates, _, _ = no_effects
    chosen = served_choice(estimates)
    assert chosen.confident.mean() < 0.05
    if model.default_programme_ < 0:
        assert (~chosen.offered | chosen.confident).all()
