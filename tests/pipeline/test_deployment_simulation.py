"""The simulated deployment: a trained model, its reference, and records the monitor accepts."""

from __future__ import annotations

import pytest

from data.schema import TARGET_FIELD
from data.shifts import ShiftConfig
from pipeline.deployment_simulation import (
    FEATURES,
    SIMULATED_VERSION,
    TrainedModel,
    monitor_simulated,
    simulate_monitoring_inputs,
    train_simulated_model,
)
from pipeline.drift import SCORE
from pipeline.monitoring_config import MonitoringConfig


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return train_simulated_model(rows=3_000, seed=5)


def test_the_reference_describes_the_training_features(trained: TrainedModel) -> None:
    assert [f.name for f in trained.reference.features] == list(FEATURES)
    assert trained.reference.score is not None  # the test split's scores, binned
    assert 0.5 < trained.reference.roc_auc < 1


def test_the_inputs_hold_scores_outcomes_and_decisions(trained: TrainedModel) -> None:
    inputs = simulate_monitoring_inputs(trained, ShiftConfig(), rows=500, seed=2)
    assert len(inputs.scores) == 500
    assert TARGET_FIELD not in inputs.scores.columns  # the audit log never holds the outcome
    assert inputs.scores[SCORE].between(0, 1).all()
    assert set(inputs.scores["model_version"]) == {SIMULATED_VERSION}
    assert len(inputs.outcomes) > 0 and len(inputs.decisions) > 0


def test_the_monitor_runs_on_them(trained: TrainedModel) -> None:
    inputs = simulate_monitoring_inputs(trained, ShiftConfig(), rows=500, seed=2)
    result = monitor_simulated(MonitoringConfig(), trained, inputs)
    assert result.n_scored == 500 and result.run_id is None
