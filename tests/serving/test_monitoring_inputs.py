"""What ``desist monitor`` reads from the service database, and that the monitor takes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from data.schema import ID_FIELD
from pipeline.drift import make_training_reference
from pipeline.monitoring import assess
from pipeline.monitoring_config import load_monitoring_config
from serving.database import make_engine
from serving.errors import NoScoresServedError
from serving.monitoring_inputs import load_monitoring_inputs
from serving.settings import Settings
from tests.support.serving import Service

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "monitoring.toml"


def scored(service: Service, assessments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = service.score(assessments)
    assert answer.status_code == 200
    body = answer.json()
    return [{"request_id": body["request_id"], **score} for score in body["scores"]]


def test_scores_decisions_and_outcomes_of_a_version_are_read_for_the_monitor(
    service: Service, settings: Settings, cohort_assessments: list[dict[str, Any]]
) -> None:
    scores = scored(service, cohort_assessments[:150]) + scored(service, cohort_assessments[150:])
    first = scores[0]
    for body in (
        {"decision": "accepted"},
        {"decision": "overridden", "override_action": "no_programme", "reason": "Already placed."},
    ):
        answer = service.client.post(
            "/v1/decisions",
            json={
                "request_id": first["request_id"],
                "subject_ref": first["subject_ref"],
                "practitioner_ref": "po-1",
                **body,
            },
            headers=service.headers(),
        )
        assert answer.status_code == 201
    # Two imports: the second corrects the first for one person; strangers are ignored.
    rows = [
        {"subject_ref": s["subject_ref"], "outcome_date": None, "follow_up_end": "2030-01-01"}
        for s in scores
    ]
    for outcomes in (
        rows,
        [{**rows[0], "outcome_date": "2027-06-01"}, {**rows[0], "subject_ref": "stranger"}],
    ):
        answer = service.client.post(
            "/v1/outcomes", json={"outcomes": outcomes}, headers=service.headers(service.admin_key)
        )
        assert answer.status_code == 201

    engine = make_engine(settings.resolved_database_url())
    inputs = load_monitoring_inputs(
        engine, version="1", assessments=pd.DataFrame(cohort_assessments)
    )
    assert len(inputs.scores) == 300
    assert inputs.scores["time"].dt.tz is not None
    assert inputs.scores["risk_probability"].tolist() == [s["risk_probability"] for s in scores]
    assert "age" in inputs.scores.columns  # the assessments joined for drift
    assert inputs.decisions is not None and inputs.decisions["revision"].tolist() == [1, 2]
    assert inputs.outcomes is not None and len(inputs.outcomes) == 300
    corrected = inputs.outcomes.set_index(ID_FIELD).loc[first["subject_ref"], "outcome_date"]
    assert corrected == pd.Timestamp("2027-06-01")

    # The monitor takes them as they are (outcomes not matured yet: drift alone).
    config = load_monitoring_config(CONFIG)
    frame = pd.DataFrame(cohort_assessments)
    reference = make_training_reference(frame, ["age", "total_sanctions", "offence_category"])
    result = assess(
        config,
        scores=inputs.scores,
        outcomes=inputs.outcomes,
        decisions=inputs.decisions,
        reference=reference,
        version="1",
    )
    assert result is not None

    # Another version, or a period before anything was served: nothing to monitor.
    with pytest.raises(NoScoresServedError):
        load_monitoring_inputs(engine, version="2")
    with pytest.raises(NoScoresServedError):
        load_monitoring_inputs(engine, version="1", until=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(NoScoresServedError):
        load_monitoring_inputs(engine, version="1", since=datetime.now(UTC) + timedelta(days=1))
    assert len(load_monitoring_inputs(engine, version="1", model_name="desist-risk").scores) == 300
    engine.dispose()
