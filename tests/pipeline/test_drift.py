from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.schema import DEFAULT_FEATURES
from data.shifts import ShiftConfig, draw_later_cohort
from data.synthetic import SynthConfig, generate_cohort
from pipeline.drift import (
    MISSING,
    OTHER,
    TrainingReference,
    bin_feature,
    drift_table,
    homogeneity_test,
    make_training_reference,
    population_stability,
)


def test_features_are_binned_by_value_or_quantile() -> None:
    need = bin_feature("drug_misuse", pd.Series([0, 1, 2, 2, None], dtype="Int8"))
    assert need.levels == ("0", "1", "2")
    assert need.counts == (1, 1, 2, 0, 1)
    assert need.labels[-2:] == [OTHER, MISSING]
    # Numbers match numbers whatever their type; unseen values go to (other).
    assert need.count(pd.Series([2.0, 1.0, 7.0, np.nan])).tolist() == [0, 1, 1, 1, 1]
    category = bin_feature("sex", pd.Series(pd.Categorical(["male", "female", "male"])))
    assert category.count(pd.Series(["male", "unknown", None])).tolist() == [0, 1, 1, 1]
    age = bin_feature("age", pd.Series(np.arange(16, 80)), bins=4)
    assert len(age.edges) == 3
    assert sum(age.counts) == 64


def test_the_reference_round_trips_through_json() -> None:
    cohort, _ = generate_cohort(SynthConfig(rows=2_000, seed=1))
    p = np.linspace(0.05, 0.95, 500)
    y = (np.random.default_rng(0).random(500) < p).astype(int)
    reference = make_training_reference(cohort, DEFAULT_FEATURES, probability=p, outcome=y)
    again = TrainingReference.from_json(reference.to_json())
    assert again.to_json() == reference.to_json()
    assert 0.5 < again.roc_auc < 1
    assert again.score is not None and again.score.n == 500
    with pytest.raises(ValueError, match="absent"):
        make_training_reference(cohort, ("no_such_feature",))


def test_psi_and_test_of_identical_counts() -> None:
    counts = np.array([100, 200, 300, 0])
    assert population_stability(counts, counts) == pytest.approx(0.0)
    statistic, dof, p_value = homogeneity_test(counts, counts)
    assert statistic == pytest.approx(0.0)
    assert (dof, p_value) == (2, pytest.approx(1.0))


def test_the_homogeneity_test_keeps_its_false_alarm_rate() -> None:
    rng = np.random.default_rng(3)
    shares = np.array([0.4, 0.3, 0.2, 0.07, 0.02, 0.01, 0.0])
    reference = rng.multinomial(20_000, shares)
    p_values = np.array(
        [homogeneity_test(reference, rng.multinomial(2_000, shares))[2] for _ in range(4_000)]
    )
    # Sparse bins are pooled, so the tail holds: about 1 % below 0.01, 0.1 % below 0.001.
    assert np.mean(p_values < 0.01) == pytest.approx(0.01, abs=0.006)
    assert np.mean(p_values < 0.001) < 0.003


def test_drift_is_quiet_on_the_same_population_and_finds_age() -> None:
    train, _ = generate_cohort(SynthConfig(rows=20_000, seed=11))
    reference = make_training_reference(train, DEFAULT_FEATURES)
    same, _ = draw_later_cohort(5_000, 12, ShiftConfig())
    older, _ = draw_later_cohort(5_000, 12, ShiftConfig(age_shift_sd=0.3))
    quiet = drift_table(reference, same)
    assert len(quiet) == len(DEFAULT_FEATURES)
    assert quiet["psi"].max() < 0.01
    moved = drift_table(reference, older).set_index("feature")
    assert moved.loc["age", "psi"] > 0.03
    assert moved.loc["age", "p_value"] < 1e-10
