"""The mix contrast: a programme's effect alone, learnt from every referral mix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold

from data.schema import DEFAULT_FEATURES, PROGRAMMES, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from models.pathway_forest import compile_forest
from models.pathway_learning import doubly_robust_outcomes
from models.pathway_mix import alone_design, fit_programme_stage, mix_design
from models.pathways import PathwayEffectModel
from tests.support.referrals import two_programme_cohort


def _stacking_risk(x: np.ndarray, referrals: np.ndarray) -> np.ndarray:
    # Each programme alone lowers risk by 0.1; both together by 0.1 + 0.05.
    count = referrals.sum(axis=1)
    return 0.5 - 0.1 * np.minimum(count, 1) - 0.05 * (count >= 2)


def _make() -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_leaf_nodes=3, min_samples_leaf=500, max_iter=60, random_state=0
    )


def test_the_design_adds_the_other_referrals_and_their_number() -> None:
    x = np.arange(6.0).reshape(3, 2)
    referrals = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]], dtype=float)
    design = mix_design(x, referrals, 0)
    np.testing.assert_array_equal(design[:, 2:], [[0, 1, 1], [0, 0, 0], [1, 1, 2]])
    assert design.shape[1] == x.shape[1] + referrals.shape[1]
    np.testing.assert_array_equal(alone_design(x, 5)[:, 2:], 0.0)
    np.testing.assert_array_equal(alone_design(x, 2), x)


@pytest.mark.parametrize(("mix", "expected"), [(True, 0.1), (False, 0.07)])
def test_the_mix_reads_the_effect_alone_where_a_second_referral_counts_half(
    mix: bool, expected: float
) -> None:
    x, referrals, y, propensity = two_programme_cohort(_stacking_risk)
    scored = doubly_robust_outcomes(_stacking_risk, x, referrals, y, propensity, 0.02)
    splits = list(KFold(2, shuffle=True, random_state=0).split(x))
    stage = fit_programme_stage(
        _make,
        x,
        referrals,
        0,
        scored.reduction[:, 0],
        scored.untreated_risk[:, 0],
        np.full(len(y), 0.5),
        np.ones(len(y), dtype=bool),
        splits,
        mix,
    )
    # Observed contrast: 60% have the other referral, so a referral adds
    # 0.6 x 0.05 + 0.4 x 0.1; read with no other referral, the mix gives 0.1.
    assert stage.effect.mean() == pytest.approx(expected, abs=0.015)
    assert stage.pseudo.mean() == pytest.approx(expected, abs=0.015)
    assert stage.model.n_features_in_ == (3 if mix else 1)


MixFitted = tuple[PathwayEffectModel, pd.DataFrame, pd.DataFrame]


@pytest.fixture(scope="module")
def mix_model() -> MixFitted:
    cohort, truth = generate_cohort(SynthConfig(rows=12_000, seed=42, referrals="randomised"))
    train, test = cohort.iloc[:8_000], cohort.iloc[8_000:]
    model = PathwayEffectModel(DEFAULT_FEATURES, max_iter=60, contrast="mix").fit(
        train, train[TARGET_FIELD].to_numpy(dtype=int)
    )
    return model, test, truth.iloc[8_000:]


def test_a_mix_model_estimates_a_known_effect_with_the_right_sign_and_size(
    mix_model: MixFitted,
) -> None:
    model, test, truth = mix_model
    estimates = model.estimate(test)
    j = PROGRAMMES.index("education_employment")
    true_mean = truth[f"effect_{PROGRAMMES[j]}"].to_numpy().mean()
    assert true_mean > 0.05
    assert estimates.effect[:, j].mean() == pytest.approx(true_mean, rel=0.5)
    pseudo = model.pseudo_outcomes(test, test[TARGET_FIELD].to_numpy(dtype=int))
    assert pseudo.shape == estimates.effect.shape
    assert pseudo[:, j].mean() > 0


def test_the_forest_reads_a_mix_model_as_the_model_does(
    mix_model: MixFitted,
) -> None:
    model, test, _ = mix_model
    expected = model.estimate(test)
    walked = compile_forest(model).predict(model.encoder_.transform(test))
    ages = test["age"].to_numpy(dtype=np.float64)
    got = model.estimates_from(walked.relative, walked.baseline, walked.propensity, ages)
    np.testing.assert_allclose(got.effect, expected.effect, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got.recommended, expected.recommended)
