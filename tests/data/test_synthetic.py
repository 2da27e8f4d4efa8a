from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from data.schema import NEED_FIELDS, PRINCES_TRUST, PROGRAMMES, TARGET_FIELD
from data.synthetic import (
    NEED_TRUTH,
    PROGRAMME_EFFECTS,
    SynthConfig,
    generate_cohort,
)
from data.validation import validate_frame

Cohort = tuple[pd.DataFrame, pd.DataFrame]


def test_same_seed_same_cohort() -> None:
    first = generate_cohort(SynthConfig(rows=500, seed=3))
    second = generate_cohort(SynthConfig(rows=500, seed=3))
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])


def test_other_seed_other_cohort() -> None:
    first, _ = generate_cohort(SynthConfig(rows=500, seed=3))
    second, _ = generate_cohort(SynthConfig(rows=500, seed=4))
    assert not first["age"].equals(second["age"])
    assert not set(first["subject_ref"]) & set(second["subject_ref"])


def test_generated_cohort_passes_the_schema(small_cohort: Cohort) -> None:
    cohort, _ = small_cohort
    clean = validate_frame(cohort, require=[TARGET_FIELD])
    assert clean.columns.tolist() == cohort.columns.tolist()


def test_truth_is_separate_and_aligned(small_cohort: Cohort) -> None:
    cohort, truth = small_cohort
    assert truth["subject_ref"].equals(cohort["subject_ref"])
    assert not {c for c in truth.columns if c != "subject_ref"} & set(cohort.columns)


# Seed figures: the latent needs' prevalences must be within 2 points.
SEED_PREVALENCE = {
    "drug_misuse": 2 / 3,
    "no_settled_accommodation": 1 / 3,
    "debt": 0.48,
    "benefit_dependence": 0.81,
    "emotional_wellbeing": 0.31,
}


@pytest.mark.parametrize(("need", "figure"), SEED_PREVALENCE.items())
def test_latent_needs_match_the_seed(large_cohort: Cohort, need: str, figure: float) -> None:
    assert large_cohort[1][f"latent_{need}"].mean() == pytest.approx(figure, abs=0.02)


def test_alcohol_involved_in_half_of_violent_offences(large_cohort: Cohort) -> None:
    cohort, truth = large_cohort
    violent = (cohort["offence_category"] == "violence").to_numpy()
    assert truth.loc[violent, "latent_alcohol_misuse"].mean() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("item", [spec.name for spec in NEED_FIELDS])
def test_screening_accuracy_is_as_documented(large_cohort: Cohort, item: str) -> None:
    cohort, truth = large_cohort
    declared = NEED_TRUTH[item]
    assert 0.7 <= declared.sensitivity <= 0.9 and 0.7 <= declared.specificity <= 0.9
    assessed = cohort[item].notna().to_numpy()
    flagged = cohort[item].to_numpy(dtype="float64", na_value=np.nan)[assessed] > 0
    has_need = truth[f"latent_{item}"].to_numpy()[assessed]
    assert flagged[has_need].mean() == pytest.approx(declared.sensitivity, abs=0.01)
    assert (~flagged[~has_need]).mean() == pytest.approx(declared.specificity, abs=0.01)


def test_some_sections_are_not_assessed(large_cohort: Cohort) -> None:
    missing = large_cohort[0]["drug_misuse"].isna().mean()
    assert 0.05 < missing < 0.15


def test_outcome_is_realistic(large_cohort: Cohort) -> None:
    cohort, truth = large_cohort
    outcome = cohort[TARGET_FIELD].to_numpy(dtype=int)
    assert 0.30 <= outcome.mean() <= 0.45
    # Observed outcomes follow the true probabilities ...
    assert outcome.mean() == pytest.approx(truth["p_reoffend"].mean(), abs=0.005)
    # ... which discriminate like real tools do, not near-perfectly.
    assert 0.72 <= roc_auc_score(outcome, truth["p_reoffend"]) <= 0.82


def _p(truth: pd.DataFrame, mask: pd.Series | np.ndarray) -> float:
    return float(truth.loc[np.asarray(mask), "p_untreated"].mean())


def test_known_drivers_move_true_risk(large_cohort: Cohort) -> None:
    cohort, truth = large_cohort
    assert _p(truth, cohort["age"] <= 21) > _p(truth, cohort["age"] >= 40) + 0.1
    assert (
        _p(truth, cohort["total_sanctions"] >= 15) > _p(truth, cohort["total_sanctions"] <= 2) + 0.1
    )
    assert _p(truth, cohort["months_offence_free"] < 3) > _p(
        truth, cohort["months_offence_free"] > 24
    )


def test_practice_referrals_follow_observed_needs(large_cohort: Cohort) -> None:
    cohort, _ = large_cohort
    flagged = cohort["unemployed"].fillna(0) > 0
    referred = cohort["referred_education_employment"] == 1
    assert referred[flagged].mean() > referred[~flagged].mean() + 0.15


@pytest.mark.parametrize("programme", PROGRAMMES)
def test_randomised_referrals_recover_configured_effects(
    randomised_cohort: Cohort, programme: str
) -> None:
    cohort, truth = randomised_cohort
    configured = PROGRAMME_EFFECTS[programme].relative_reduction
    full = np.isclose(truth[f"relative_effect_{programme}"], configured)
    none = truth[f"relative_effect_{programme}"].to_numpy() == 0
    referred = (cohort[f"referred_{programme}"] == 1).to_numpy()
    outcome = cohort[TARGET_FIELD].to_numpy(dtype=float)

    def reduction(group: np.ndarray) -> float:
        return 1 - outcome[group & referred].mean() / outcome[group & ~referred].mean()

    eligible = truth[f"propensity_{programme}"].to_numpy() > 0
    assert reduction(full) == pytest.approx(configured, abs=0.035)
    assert reduction(none & eligible) == pytest.approx(0.0, abs=0.035)


def test_princes_trust_only_for_ages_16_to_25(large_cohort: Cohort) -> None:
    cohort, truth = large_cohort
    older = (cohort["age"] > 25).to_numpy()
    assert (cohort.loc[older, f"referred_{PRINCES_TRUST}"] == 0).all()
    assert (truth.loc[older, f"effect_{PRINCES_TRUST}"] == 0).all()
    assert truth.loc[~older, f"effect_{PRINCES_TRUST}"].max() > 0


def test_effects_only_for_people_with_the_matching_need(large_cohort: Cohort) -> None:
    _, truth = large_cohort
    no_need = ~truth["latent_unemployed"]
    assert (truth.loc[no_need, "effect_education_employment"] == 0).all()
    assert (truth.loc[~no_need, "effect_education_employment"] > 0).all()


def test_effect_scale_zero_means_nothing_works() -> None:
    cohort, truth = generate_cohort(SynthConfig(rows=2_000, seed=5, effect_scale=0))
    assert (truth.filter(like="effect_") == 0).all().all()
    assert np.allclose(truth["p_reoffend"], truth["p_untreated"])
    assert cohort[[f"referred_{p}" for p in PROGRAMMES]].to_numpy().sum() > 0
