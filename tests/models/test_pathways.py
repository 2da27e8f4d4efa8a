from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from data.schema import DEFAULT_FEATURES, PRINCES_TRUST, PROGRAMMES, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from models.pathway_estimates import PathwayEstimates, recommendations
from models.pathways import PathwayEffectModel

Fitted = tuple[PathwayEffectModel, PathwayEstimates, pd.DataFrame, pd.DataFrame]


def _fit(config: SynthConfig, contrast: str = "alone") -> Fitted:
    cohort, truth = generate_cohort(config)
    half = len(cohort) * 2 // 3
    model = PathwayEffectModel(DEFAULT_FEATURES, max_iter=80, contrast=contrast).fit(
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


@pytest.fixture(scope="module")
def observed_trial() -> Fitted:
    # The observed contrast (other referrals as they were) is the one whose
    # pseudo-outcomes are doubly robust for it; "alone" leans on the outcome model.
    return _fit(SynthConfig(rows=15_000, seed=42, referrals="randomised"), contrast="observed")


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
    others = np.ones(len(test))
    for programme in PROGRAMMES:
        if programme != k:
            referred = test[f"referred_{programme}"].to_numpy(dtype=float)
            others *= 1 - truth[f"relative_effect_{programme}"].to_numpy() * referred
    return truth["p_untreated"].to_numpy() * truth[f"relative_effect_{k}"].to_numpy() * others


@pytest.mark.parametrize("programme", PROGRAMMES)
def test_randomised_referrals_recover_the_average_effects(
    observed_trial: Fitted, programme: str
) -> None:
    model, estimates, test, truth = observed_trial
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


def test_the_default_programme_is_the_one_with_the_largest_dr_value(trial: Fitted) -> None:
    model, _, _, truth = trial
    # In today's world education and employment helps most people most.
    best_true = int(np.argmax(truth[[f"effect_{p}" for p in PROGRAMMES]].to_numpy().mean(axis=0)))
    assert model.default_programme_ == best_true
    values = np.array([model.programme_value_[p] for p in PROGRAMMES])
    assert model.programme_floor_[PROGRAMMES[best_true]] > 0
    assert values.argmax() == best_true


def test_no_true_effects_means_no_default_programme(no_effects: Fitted) -> None:
    model, *_ = no_effects
    assert model.default_programme_ == -1
    assert all(model.programme_floor_[p] <= 0 for p in PROGRAMMES)


def test_an_unknown_contrast_is_refused(trial: Fitted) -> None:
    _, _, test, _ = trial
    with pytest.raises(ValueError, match="contrast"):
        PathwayEffectModel(DEFAULT_FEATURES, contrast="both").fit(
            test, test[TARGET_FIELD].to_numpy(dtype=int)
        )


def test_estimates_with_risk_are_the_estimates_and_the_risk_with_no_referral(trial: Fitted) -> None:
    model, estimates, test, _ = trial
    again, risk = model.estimate_with_risk(test)
    np.testing.assert_array_equal(again.effect, estimates.effect)
    np.testing.assert_array_equal(again.recommended, estimates.recommended)
    np.testing.assert_array_equal(risk, model.baseline_risk(model.encoder_.transform(test)))
    assert risk.shape == (len(test),) and ((risk > 0) & (risk < 1)).all()
