from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.bootstrap import bootstrap_auc_and_gap, percentile_interval, roc_auc
from tests.support.scores import calibrated


def test_auc_matches_sklearn_with_and_without_ties() -> None:
    y, p = calibrated(2_000, seed=21)
    for scores in (p, np.round(p, 1)):
        assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auc_is_nan_with_one_outcome() -> None:
    assert math.isnan(roc_auc(np.zeros(10, dtype=np.int64), np.linspace(0, 1, 10)))


def test_each_resample_gives_an_auc_and_a_gap_near_the_sample_ones() -> None:
    y, p = calibrated(3_000, seed=22)
    aucs, gaps = bootstrap_auc_and_gap(y, p, 50, np.random.default_rng(0))
    assert aucs.shape == gaps.shape == (50,)
    assert np.mean(aucs) == pytest.approx(roc_auc(y, p), abs=0.01)
    assert np.mean(gaps) == pytest.approx(p.mean() - y.mean(), abs=0.005)


def test_resamples_repeat_with_the_seed_and_none_are_drawn_for_zero() -> None:
    y, p = calibrated(500, seed=23)
    first = bootstrap_auc_and_gap(y, p, 20, np.random.default_rng(4))
    again = bootstrap_auc_and_gap(y, p, 20, np.random.default_rng(4))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert [a.size for a in bootstrap_auc_and_gap(y, p, 0, np.random.default_rng(4))] == [0, 0]


def test_an_interval_needs_most_resamples_finite() -> None:
    low, high = percentile_interval(np.linspace(0.0, 1.0, 201))
    assert (low, high) == pytest.approx((0.025, 0.975))
    half_finite = np.array([0.5, 0.6, 0.7, math.nan, math.nan, math.nan])
    assert not math.isnan(percentile_interval(half_finite)[0])
    mostly_nan = np.array([0.5, 0.6, math.nan, math.nan, math.nan, math.nan])
    assert all(math.isnan(v) for v in percentile_interval(mostly_nan))
    assert all(math.isnan(v) for v in percentile_interval(np.empty(0)))
