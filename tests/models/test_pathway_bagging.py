"""Subagging of the final stage: one booster that predicts its members' mean."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from data.schema import DEFAULT_FEATURES, PROGRAMMES, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from models.pathway_bagging import bagged_fit, merge_boosters
from models.pathway_forest import compile_forest
from models.pathways import PathwayEffectModel


def _make() -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(max_leaf_nodes=3, max_iter=30, random_state=4)


def _data(n: int = 4_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 3))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing-value branches too
    return x, np.nan_to_num(x[:, 0]) + rng.normal(0.0, 1.0, n)


def test_a_merged_booster_predicts_the_mean_of_its_members() -> None:
    x, y = _data()
    members = [_make().set_params(random_state=s).fit(x[s::3], y[s::3]) for s in range(3)]
    merged = merge_boosters(members)
    expected = np.mean([m.predict(x) for m in members], axis=0)
    np.testing.assert_allclose(merged.predict(x), expected, rtol=0, atol=1e-12)
    assert merged.n_iter_ == sum(m.n_iter_ for m in members)


def test_one_bag_is_the_plain_fit_and_more_bags_are_smoother() -> None:
    x, y = _data()
    plain = _make().fit(x, y)
    np.testing.assert_array_equal(bagged_fit(_make, x, y, None, 1).predict(x), plain.predict(x))
    bagged = bagged_fit(_make, x, y, np.ones(y.size), 8)
    # The same signal (slope 1 in x[:, 0]) is found, with more and smaller steps.
    assert np.corrcoef(bagged.predict(x), plain.predict(x))[0, 1] > 0.9
    assert np.unique(bagged.predict(x)).size > np.unique(plain.predict(x)).size
    with pytest.raises(ValueError, match="bags"):
        bagged_fit(_make, x, y, None, 0)


def test_a_bagged_pathway_model_is_walked_by_the_forest_as_the_model_predicts() -> None:
    cohort, _ = generate_cohort(SynthConfig(rows=8_000, seed=43))
    train, test = cohort.iloc[:6_000], cohort.iloc[6_000:]
    model = PathwayEffectModel(DEFAULT_FEATURES, max_iter=40, n_bags=3).fit(
        train, train[TARGET_FIELD].to_numpy(dtype=int)
    )
    x = model.encoder_.transform(test)
    walked = compile_forest(model).predict(x)
    relative = np.column_stack([model.effect_models_[p].predict(x) for p in PROGRAMMES])
    np.testing.assert_allclose(walked.relative, relative, rtol=0, atol=1e-12)
