"""The flattened pathway forest: the boosters' own predictions, bit for bit, and what it refuses."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from data.schema import DEFAULT_FEATURES, PROGRAMMES, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from models.pathway_forest import compile_forest
from models.pathways import PathwayEffectModel

Fitted = tuple[PathwayEffectModel, pd.DataFrame]


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    cohort, _ = generate_cohort(SynthConfig(rows=8_000, seed=43))
    train, test = cohort.iloc[:6_000], cohort.iloc[6_000:]
    model = PathwayEffectModel(DEFAULT_FEATURES, max_iter=40).fit(
        train, train[TARGET_FIELD].to_numpy(dtype=int)
    )
    return model, test


def _with_gaps(x: np.ndarray, seed: int) -> np.ndarray:
    """Return ``x`` with a fifth of its values missing, at random (missing-value branches)."""
    out = x.copy()
    out[np.random.default_rng(seed).random(x.shape) < 0.2] = np.nan
    return out


def test_the_forest_predicts_what_every_booster_predicts(fitted: Fitted) -> None:
    model, test = fitted
    forest = compile_forest(model)
    x = _with_gaps(model.encoder_.transform(test), seed=0)
    walked = forest.predict(x)
    n, k = x.shape[0], len(PROGRAMMES)
    relative = np.column_stack([model.effect_models_[p].predict(x) for p in PROGRAMMES])
    # Exact: the walk adds the trees in scikit-learn's order.
    np.testing.assert_array_equal(walked.relative, relative)
    np.testing.assert_array_equal(walked.baseline, model.baseline_risk(x))
    np.testing.assert_array_equal(
        walked.propensity, model.nuisance_.propensities(x, np.zeros((n, k)))
    )


def test_estimates_from_the_forest_are_the_models_estimates(fitted: Fitted) -> None:
    model, test = fitted
    expected = model.estimate(test)
    walked = compile_forest(model).predict(model.encoder_.transform(test))
    ages = test["age"].to_numpy(dtype=np.float64)
    got = model.estimates_from(walked.relative, walked.baseline, walked.propensity, ages)
    for name in ("effect", "interval_low", "interval_high", "propensity"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=0, atol=1e-12)
    for name in ("in_overlap", "eligible", "recommended"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    # Both sides of the overlap and eligibility flags are compared, not one value.
    assert expected.in_overlap.any() and not expected.in_overlap.all()
    assert expected.eligible.any() and not expected.eligible.all()


def test_one_row_at_a_time_equals_the_batch(fitted: Fitted) -> None:
    model, test = fitted
    forest = compile_forest(model)
    x = _with_gaps(model.encoder_.transform(test.head(40)), seed=1)
    batch = forest.predict(x)
    for i in range(len(x)):
        one = forest.predict(x[i : i + 1])
        np.testing.assert_array_equal(one.relative[0], batch.relative[i])
        np.testing.assert_array_equal(one.propensity[0], batch.propensity[i])
        assert one.baseline[0] == batch.baseline[i]


def test_a_constant_propensity_is_kept_as_it_is(fitted: Fitted) -> None:
    model, test = fitted
    changed = copy.deepcopy(model)
    propensity = list(changed.nuisance_.propensity)
    propensity[2] = 0.0  # nobody referred to the third programme
    changed.nuisance_ = type(changed.nuisance_)(changed.nuisance_.outcome, tuple(propensity))
    walked = compile_forest(changed).predict(changed.encoder_.transform(test.head(5)))
    assert (walked.propensity[:, 2] == 0.0).all()


def test_boosters_the_walk_cannot_read_are_refused(fitted: Fitted) -> None:
    model, test = fitted
    changed = copy.deepcopy(model)
    x = changed.encoder_.transform(test)
    x[:, 0] = np.arange(len(x)) % 3  # a small categorical column
    categorical = HistGradientBoostingRegressor(max_iter=5, categorical_features=[0])
    changed.effect_models_[PROGRAMMES[0]] = categorical.fit(x, np.asarray(x[:, 0] == 1, float))
    with pytest.raises(TypeError, match="numeric splits"):
        compile_forest(changed)
    poisson = HistGradientBoostingRegressor(max_iter=5, loss="poisson")
    changed.effect_models_[PROGRAMMES[0]] = poisson.fit(x, np.ones(len(x)))
    with pytest.raises(TypeError, match="link"):
        compile_forest(changed)
