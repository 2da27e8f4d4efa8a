"""The rule-based pathway baselines: eligible choices, the needs-score rule, the naive learner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.schema import PROGRAMMES, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from models.pathway_programmes import PROGRAMME_NEEDS
from models.pathway_rules import (
    NaivePathwayModel,
    eligibility,
    most_common_need_policy,
    need_scores,
    random_policy,
    rnr_policy,
)


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return generate_cohort(SynthConfig(rows=3_000, seed=3))[0]


def _chosen_is_eligible(cohort: pd.DataFrame, choice: np.ndarray) -> bool:
    allowed = eligibility(cohort)
    return bool(allowed[np.arange(len(cohort)), choice].all())


def test_need_scores_sum_each_programmes_items_with_missing_as_zero(cohort: pd.DataFrame) -> None:
    scores = need_scores(cohort)
    assert scores.shape == (len(cohort), len(PROGRAMMES))
    first = PROGRAMMES[0]
    expected = cohort[list(PROGRAMME_NEEDS[first])].fillna(0).sum(axis=1).to_numpy(dtype=float)
    np.testing.assert_array_equal(scores[:, 0], expected)


@pytest.mark.parametrize("policy", [random_policy, most_common_need_policy, rnr_policy])
def test_every_rule_chooses_a_programme_per_person(cohort: pd.DataFrame, policy: object) -> None:
    choice = policy(cohort)  # type: ignore[operator]
    assert choice.shape == (len(cohort),)
    assert choice.min() >= 0 and choice.max() < len(PROGRAMMES)


@pytest.mark.parametrize("policy", [random_policy, rnr_policy])
def test_the_random_and_needs_rules_choose_only_eligible_programmes(
    cohort: pd.DataFrame, policy: object
) -> None:
    assert _chosen_is_eligible(cohort, policy(cohort))  # type: ignore[operator]


def test_the_random_rule_repeats_with_its_seed(cohort: pd.DataFrame) -> None:
    np.testing.assert_array_equal(random_policy(cohort, seed=4), random_policy(cohort, seed=4))
    assert (random_policy(cohort, seed=4) != random_policy(cohort, seed=5)).any()


def test_rnr_takes_the_highest_eligible_needs_score(cohort: pd.DataFrame) -> None:
    scores = np.where(eligibility(cohort), need_scores(cohort), -1.0)
    chosen = scores[np.arange(len(cohort)), rnr_policy(cohort)]
    np.testing.assert_array_equal(chosen, scores.max(axis=1))


def test_the_naive_learner_tabulates_gaps_and_chooses_eligibly(cohort: pd.DataFrame) -> None:
    model = NaivePathwayModel().fit(cohort, cohort[TARGET_FIELD].to_numpy(dtype=int))
    top = int(need_scores(cohort).max()) + 1
    assert model.gaps_.shape == (len(PROGRAMMES), top)
    assert model.estimate(cohort).shape == (len(cohort), len(PROGRAMMES))
    assert _chosen_is_eligible(cohort, model.policy(cohort))
