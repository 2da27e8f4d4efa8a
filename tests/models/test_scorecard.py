from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.scorecard import BinnedLogisticScorecard


@parametrize_with_checks([BinnedLogisticScorecard(), BinnedLogisticScorecard(max_bins=3, C=0.1)])
def test_follows_scikit_learn_estimator_rules(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def _data(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 3, n).astype(float)])
    X[rng.random(n) < 0.1, 1] = np.nan
    logit = 0.8 * X[:, 0] + np.nan_to_num(0.5 * X[:, 1], nan=0.3)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def test_contributions_sum_exactly_to_the_decision_function() -> None:
    X, y = _data()
    model = BinnedLogisticScorecard(max_bins=8).fit(X, y)
    total = model.base_value_ + model.contributions(X).sum(axis=1)
    np.testing.assert_allclose(total, model.decision_function(X), atol=1e-12)


def test_few_valued_columns_get_a_bin_per_value_and_missing_its_own() -> None:
    X, y = _data()
    model = BinnedLogisticScorecard(max_bins=8).fit(X, y)
    assert model.thresholds_[1].tolist() == [0.5, 1.5]
    assert len(model.bin_values_[1]) == 4  # 0, 1, 2 and "missing"
    assert len(model.bin_values_[0]) == 8 + 1


def test_monotonic_constraint_orders_bin_values_but_not_missing() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 1))
    X[:200, 0] = np.nan
    y = (rng.random(3000) < 0.4).astype(int)  # pure noise: free bins would zig-zag
    free = BinnedLogisticScorecard(max_bins=10).fit(X, y)
    up = BinnedLogisticScorecard(max_bins=10, monotonic_cst=np.array([1])).fit(X, y)
    down = BinnedLogisticScorecard(max_bins=10, monotonic_cst=np.array([-1])).fit(X, y)
    assert np.any(np.diff(free.bin_values_[0][:-1]) < 0)
    assert np.all(np.diff(up.bin_values_[0][:-1]) >= -1e-12)
    assert np.all(np.diff(down.bin_values_[0][:-1]) <= 1e-12)


def test_calibrated_in_the_large_on_training_data() -> None:
    X, y = _data()
    model = BinnedLogisticScorecard(monotonic_cst=np.array([1, 1])).fit(X, y)
    assert model.predict_proba(X)[:, 1].mean() == pytest.approx(y.mean(), abs=1e-6)


def test_refuses_more_than_two_classes() -> None:
    X, _ = _data(300)
    with pytest.raises(ValueError, match="Only binary classification"):
        BinnedLogisticScorecard().fit(X, np.arange(300) % 3)


def test_refuses_badly_shaped_constraints() -> None:
    X, y = _data(300)
    with pytest.raises(ValueError, match="one entry per feature"):
        BinnedLogisticScorecard(monotonic_cst=np.array([1])).fit(X, y)
