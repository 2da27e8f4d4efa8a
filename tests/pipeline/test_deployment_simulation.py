"""The simulated deployment: a trained model, its reference, and records the monitor accepts."""

from __future__ import annotations

from typing import Any

import pytest

from data.schema import TARGET_FIELD
from data.shifts import ShiftConfig, draw_later_cohort
from pipeline.deployment_simulation import (
    FEATURES,
    SIMULATED_VERSION,
    ServiceAnswerError,
    TrainedModel,
    monitor_simulated,
    score_through_service,
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


class _Answer:
    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        self.status_code, self.body, self.text = status_code, body, str(body)

    def json(self) -> dict[str, Any]:
        return self.body


class _EchoService:
    """Answers every assessment with a fixed score, or refuses every request with ``refuse``."""

    def __init__(self, refuse: int | None = None) -> None:
        self.refuse, self.batches = refuse, []

    def post(self, url: str, *, json: Any, headers: dict[str, str]) -> _Answer:
        if self.refuse is not None:
            return _Answer(self.refuse, {"error": {"code": "refused"}})
        sent = json["assessments"]
        self.batches.append(len(sent))
        scores = [
            {"subject_ref": a["subject_ref"], "risk_probability": 0.4, "risk_band": "medium"}
            for a in sent
        ]
        return _Answer(200, {"request_id": f"r{len(self.batches)}", "scores": scores})


def test_scores_go_to_the_service_in_batches_without_not_assessed_fields() -> None:
    cohort, _ = draw_later_cohort(250, 3, ShiftConfig())
    service = _EchoService()
    served = score_through_service(service, "k", cohort, batch=100)
    assert service.batches == [100, 100, 50]
    assert served["subject_ref"].tolist() == cohort["subject_ref"].astype(str).tolist()
    assert served["request_id"].nunique() == 3


def test_a_refusal_by_the_service_stops_the_simulation() -> None:
    cohort, _ = draw_later_cohort(10, 3, ShiftConfig())
    with pytest.raises(ServiceAnswerError, match="answered 401"):
        score_through_service(_EchoService(refuse=401), "bad key", cohort)
