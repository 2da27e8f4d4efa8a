from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.bootstrap import (
    bootstrap_auc_and_gap,
    draw_group_resamples,
    group_figures,
    percentile_interval,
    roc_auc,
)
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


def _two_groups(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n) < 0.6, "a", "b").astype(object)
    p = np.clip(rng.beta(2, 3, n) + np.where(group == "b", 0.1, 0.0), 0.01, 0.99)
    y = (rng.random(n) < p).astype(np.int64)
    return y, p, pd.Series(group)


def test_every_figure_of_every_resample_is_the_slow_loop_s_on_the_same_draws() -> None:
    y, p, group = _two_groups(1_500, seed=24)
    score = np.round(p, 1)  # a coarse score with ties, cut at 0.5
    resamples = draw_group_resamples({"g": group}, 40, seed=2)
    for draws in resamples.groups:
        figures = group_figures(draws, y, p, score, thresholds=(0.5,))
        assert figures.n == int((group == draws.group).sum())
        for b in range(40):
            rows = np.repeat(draws.rows, draws.counts[b])  # the b-th resample, row by row
            y_b, p_b, flagged = y[rows], p[rows], score[rows] >= 0.5
            expected = {
                "roc_auc": roc_auc_score(y_b, score[rows]),
                "mean_predicted": p_b.mean(),
                "observed_rate": y_b.mean(),
                "calibration_gap": p_b.mean() - y_b.mean(),
                "selection_rate@0": flagged.mean(),
                "fpr@0": flagged[y_b == 0].mean(),
                "fnr@0": 1 - flagged[y_b == 1].mean(),
            }
            for key, value in expected.items():
                assert figures.samples[key][b] == pytest.approx(value, abs=1e-12), key


def test_each_group_is_resampled_within_itself_and_repeats_with_its_seed() -> None:
    _, _, group = _two_groups(800, seed=25)
    first = draw_group_resamples({"g": group}, 30, seed=7)
    assert [d.group for d in first.groups] == ["a", "b"]
    for draws in first.groups:
        assert draws.counts.shape == (30, draws.n)
        assert (draws.counts.sum(axis=1) == draws.n).all()
    # A group's draws depend on the seed and its own name, not on the other attributes drawn.
    both = draw_group_resamples({"other": group.map({"a": "x", "b": "y"}), "g": group}, 30, 7)
    for mine, theirs in zip(first.groups, both.of("g"), strict=True):
        assert np.array_equal(mine.counts, theirs.counts)
    other_seed = draw_group_resamples({"g": group}, 30, seed=8)
    assert not np.array_equal(first.groups[0].counts, other_seed.groups[0].counts)
    assert draw_group_resamples({"g": group}, 0, 7).groups[0].counts.shape == (0, first.groups[0].n)


def test_intervals_agree_with_an_independent_resampling_of_the_whole_sample() -> None:
    """Within Monte-Carlo error of fairlearn's way: resample all rows, then split by group.

    With B = 400 resamples a 2.5 % or 97.5 % percentile has a Monte-Carlo
    standard error of about 0.13 bootstrap standard deviations (sd); the
    difference of two independent estimates about 0.19 sd. 0.8 sd is four of
    those; a wrong figure (another metric, a missed group split) is off by far more.
    """
    y, p, group = _two_groups(3_000, seed=26)
    labels = group.to_numpy()
    n_boot = 400
    resamples = draw_group_resamples({"g": group}, n_boot, seed=0)
    rng = np.random.default_rng(99)
    reference: dict[tuple[str, str], list[float]] = {}
    for _ in range(n_boot):
        rows = rng.integers(0, len(y), len(y))
        for name in ("a", "b"):
            mine = rows[labels[rows] == name]
            y_b, p_b = y[mine], p[mine]
            reference.setdefault((name, "roc_auc"), []).append(roc_auc_score(y_b, p_b))
            reference.setdefault((name, "calibration_gap"), []).append(p_b.mean() - y_b.mean())
            reference.setdefault((name, "fpr@0"), []).append(float((p_b[y_b == 0] >= 0.5).mean()))
    for draws in resamples.groups:
        figures = group_figures(draws, y, p, p, thresholds=(0.5,))
        for key in ("roc_auc", "calibration_gap", "fpr@0"):
            low, high = figures.interval(key)
            sd = (high - low) / 3.92
            ref_low, ref_high = np.percentile(reference[(draws.group, key)], [2.5, 97.5])
            assert abs(low - ref_low) < 0.8 * sd and abs(high - ref_high) < 0.8 * sd, key
