from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from data.synthetic import SynthConfig, generate_cohort
from pipeline.comparison import (
    build_baseline,
    level_rates,
    matched_threshold,
    paired_auc_difference,
    single_feature_aucs,
)


def test_matched_threshold_flags_the_requested_share() -> None:
    p = np.random.default_rng(0).random(1_000)
    threshold = matched_threshold(p, 0.3)
    assert np.mean(p >= threshold) == pytest.approx(0.3, abs=0.002)


def test_level_rates_follow_training_rates_and_keep_the_order() -> None:
    train_score = np.repeat(np.arange(1, 11), 100)
    rng = np.random.default_rng(1)
    train_y = (rng.random(1_000) < train_score / 12).astype(int)
    rates = level_rates(train_score, train_y, np.arange(1, 11))
    assert np.all(np.diff(rates) >= 0)
    assert rates[0] < 0.2 and rates[-1] > 0.7


def test_paired_auc_difference_favours_the_better_score() -> None:
    rng = np.random.default_rng(2)
    signal = rng.standard_normal(2_000)
    y = (rng.random(2_000) < 1 / (1 + np.exp(-signal))).astype(int)
    good, noisy = signal, signal + 2 * rng.standard_normal(2_000)
    gain, low, high = paired_auc_difference(y, good, noisy, n_bootstrap=50, seed=0)
    assert gain > 0 and low > 0 and low <= gain <= high


def test_single_feature_screen_exposes_a_leaked_outcome() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    frame = pd.DataFrame(
        {
            "reoffended_24m": y,
            "age": rng.integers(18, 70, 500),
            "in_custody_at_assessment": 1 - y,  # the outcome in disguise, reversed
            "offence_category": pd.Categorical(np.where(y == 1, "theft", "fraud")),
        }
    )
    table = single_feature_aucs(
        frame, ("age", "in_custody_at_assessment", "offence_category"), "reoffended_24m"
    )
    aucs = dict(zip(table["feature"], table["auc"], strict=True))
    assert aucs["in_custody_at_assessment"] == 1.0 and aucs["offence_category"] == 1.0
    assert aucs["age"] < 0.6


def test_single_feature_aucs_are_sklearns() -> None:
    cohort, _ = generate_cohort(SynthConfig(rows=4_000, seed=8))
    features = ("age", "total_sanctions", "drug_misuse", "offence_category", "sex")
    table = single_feature_aucs(cohort, features, "reoffended_12m")
    y = cohort["reoffended_12m"].to_numpy(dtype=int)
    for name, auc in zip(table["feature"], table["auc"], strict=True):
        column = cohort[name]
        if name in ("offence_category", "sex"):
            labels = column.astype(object).where(column.notna(), "missing")
            score = labels.map(pd.Series(y).groupby(labels.to_numpy()).mean()).to_numpy(float)
        else:
            values = column.to_numpy(dtype=float, na_value=np.nan)
            score = np.where(np.isnan(values), np.nanmedian(values), values)
        expected = float(roc_auc_score(y, score))
        assert auc == pytest.approx(max(expected, 1 - expected), abs=1e-12)


def test_baseline_is_a_logistic_regression_on_its_features() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"age": rng.integers(18, 70, 400), "total_sanctions": rng.poisson(3, 400)})
    y = (rng.random(400) < 1 / (1 + np.exp(-(frame["total_sanctions"] - 3)))).astype(int)
    fitted = build_baseline(("age", "total_sanctions")).fit(frame, y)
    coef = fitted.named_steps["model"].coef_.ravel()
    assert coef[1] > 0.5 and abs(coef[0]) < coef[1]
