"""POST /v1/pathway-allocations: the model layer's allocation, places, scope, audit, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Table, event, select
from sqlalchemy.exc import OperationalError

from benchmarks.support.assessments import assessment
from benchmarks.support.registry import Store
from data.schema import AUDIT_ONLY, PROGRAMMES
from models.allocation import allocate_cohort
from serving.allocation_schemas import EXAMPLE_ALLOCATION, PathwayAllocationResponse
from serving.audit import ALLOCATED, NOT_PLACED, input_digest
from serving.commands import create_key
from serving.database import allocation_audit_table, make_engine, recommendation_audit_table
from serving.schemas import assessment_batch_model
from tests.support.serving import (
    Service,
    make_settings,
    recommendation_rows,
    served_pathway_table,
    start_service,
)

ROUTE = "/v1/pathway-allocations"


@pytest.fixture
def service(pathway_store: Store, tmp_path: Path) -> Iterator[Service]:
    yield from start_service(make_settings(pathway_store, tmp_path, max_allocation_batch=400))


@pytest.fixture
def planner_key(service: Service) -> str:
    return create_key("planner", "allocate", settings=service.settings)


def allocate(service: Service, items: list[dict[str, Any]], places: Any, key: str) -> Any:
    body = {"assessments": items, "places": places}
    return service.client.post(ROUTE, json=body, headers=service.headers(key))


def logged(service: Service, table: Table = recommendation_audit_table) -> list[Any]:
    engine = make_engine(service.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(table).order_by(table.c.id)))
    finally:
        engine.dispose()


def test_the_answer_is_the_model_layers_allocation_within_the_places(
    service: Service, planner_key: str, cohort_assessments: list[dict[str, Any]]
) -> None:
    items = cohort_assessments[:300]
    places = {"drugs_alcohol": 12, "education_employment": 20, "accommodation": 0, "health": 5}
    response = allocate(service, items, places, planner_key)
    assert response.status_code == 200, response.text
    body = response.json()
    model, table = served_pathway_table(service, items)
    wanted = np.array([places.get(p, 0) for p in PROGRAMMES])
    expected = allocate_cohort(model, table, wanted)
    names = [None if j < 0 else PROGRAMMES[j] for j in expected.programme]
    people = body["allocations"]
    assert [p["subject_ref"] for p in people] == [i["subject_ref"] for i in items]
    assert [p["programme"] for p in people] == names
    assert body["total_expected_reduction"] == pytest.approx(expected.total)
    assert sum(p["expected_reduction"] for p in people) == pytest.approx(expected.total)
    # Places respected, and every programme reported: those without places fill none.
    filled = {row["programme"]: row for row in body["places"]}
    assert list(filled) == list(PROGRAMMES)
    for programme in PROGRAMMES:
        taken = sum(p["programme"] == programme for p in people)
        assert filled[programme]["filled"] == taken <= places.get(programme, 0)
        assert filled[programme]["places"] == places.get(programme, 0)
    assert filled["accommodation"]["filled"] == 0 and filled["drugs_alcohol"]["filled"] > 0
    for person in people:
        if person["programme"] is None:
            assert person["expected_reduction"] == 0
            assert person["risk_with"] == person["risk_without"]
        else:
            assert person["expected_reduction"] > 0
            assert person["risk_with"] == pytest.approx(
                max(0.0, person["risk_without"] - person["expected_reduction"])
            )
    assert any(p["recommended_with_confidence"] for p in people)
    # Shares by the audit-only fields, which the model does not read: each attribute's
    # groups make up the whole cohort.
    assert not set(model.features) & set(AUDIT_ONLY)
    for attribute in ("ethnicity", "sex"):
        groups = body["shares"][attribute]
        assert sum(g["cohort_share"] for g in groups.values()) == pytest.approx(1, abs=1e-3)
        assert sum(g["allocated_share"] for g in groups.values()) == pytest.approx(1, abs=1e-3)


def test_every_person_considered_has_one_audit_row_placed_or_not(
    service: Service, planner_key: str, cohort_assessments: list[dict[str, Any]]
) -> None:
    items = cohort_assessments[:80]
    body = allocate(service, items, {"drugs_alcohol": 10, "finance_debt": 3}, planner_key).json()
    people = body["allocations"]
    rows = logged(service)
    assert len(rows) == len(people) == len(items)
    assert 0 < sum(p["programme"] is not None for p in people) < len(items)
    digests = {i["subject_ref"]: i for i in items}
    batch = assessment_batch_model(1000)
    for row, person in zip(rows, people, strict=True):
        assert row.request_id == body["request_id"] and row.client == "planner"
        assert row.subject_ref == person["subject_ref"]
        if person["programme"] is None:
            assert row.recommended == NOT_PLACED
        else:
            assert row.recommended == (
                f"{ALLOCATED}{person['programme']}:{person['expected_reduction']:.4f}"
            )
        item = batch.model_validate({"assessments": [digests[row.subject_ref]]}).assessments[0]
        assert row.input_digest == input_digest(item)


def test_the_allocation_itself_is_recorded_as_answered(
    service: Service, planner_key: str, cohort_assessments: list[dict[str, Any]]
) -> None:
    items = cohort_assessments[:60]
    body = allocate(service, items, {"health": 4, "accommodation": 2}, planner_key).json()
    (row,) = logged(service, allocation_audit_table)
    assert row.request_id == body["request_id"] and row.client == "planner"
    assert (row.model_name, row.model_version) == (body["model_name"], body["model_version"])
    assert row.cohort_size == len(items)
    assert json.loads(row.places) == body["places"]
    assert json.loads(row.shares) == body["shares"]
    assert row.total_expected_reduction == pytest.approx(body["total_expected_reduction"])
    # An allocation that places nobody is recorded too, with every person's row.
    nobody = allocate(service, items[:5], {}, planner_key).json()
    assert all(p["programme"] is None for p in nobody["allocations"])
    rows = [r for r in logged(service) if r.request_id == nobody["request_id"]]
    assert [r.recommended for r in rows] == [NOT_PLACED] * 5
    last = logged(service, allocation_audit_table)[-1]
    assert last.request_id == nobody["request_id"] and last.total_expected_reduction == 0
    # So a practitioner's decision on a person given no place names a served row.
    decision = {
        "request_id": nobody["request_id"],
        "subject_ref": rows[0].subject_ref,
        "decision": "accepted",
        "practitioner_ref": "po-4711",
    }
    recorded = service.client.post("/v1/decisions", json=decision, headers=service.headers())
    assert recorded.status_code == 201 and recorded.json()["served"] == "recommendations"


def test_places_that_are_negative_or_name_no_programme_are_refused_by_field(
    service: Service, planner_key: str
) -> None:
    people = [assessment(subject_ref="a"), assessment(subject_ref="b")]
    negative = allocate(service, people, {"drugs_alcohol": -1}, planner_key)
    assert negative.status_code == 422
    (violation,) = negative.json()["violations"]
    assert violation["field"] == "places.drugs_alcohol" and violation["assessment_index"] is None
    unknown = allocate(service, people, {"yoga": 3}, planner_key)
    assert unknown.status_code == 422
    (violation,) = unknown.json()["violations"]
    assert violation["field"] == "places.yoga"
    assert (
        violation["reason"].startswith("unknown programme")
        and "drugs_alcohol" in (violation["reason"])
    )
    for odd in ("3", 2.0, True):
        refused = allocate(service, people, {"health": odd}, planner_key)
        assert refused.status_code == 422
        assert refused.json()["violations"][0]["field"] == "places.health"
    missing = service.client.post(
        ROUTE, json={"assessments": people}, headers=service.headers(planner_key)
    )
    assert missing.status_code == 422 and missing.json()["violations"][0]["field"] == "places"
    bad_person = allocate(service, [assessment(age=140)], {"health": 1}, planner_key)
    assert bad_person.json()["violations"][0]["assessment_index"] == 0
    too_many = allocate(service, [assessment()] * 401, {"health": 1}, planner_key)
    assert too_many.status_code == 413
    assert recommendation_rows(service.settings) == 0


def test_only_keys_that_may_allocate_are_admitted(service: Service, planner_key: str) -> None:
    people = [assessment()]
    refused = allocate(service, people, {"health": 1}, service.score_key)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert service.client.post(ROUTE, json={"assessments": people, "places": {}}).status_code == 401
    assert recommendation_rows(service.settings) == 0
    assert allocate(service, people, {"health": 1}, planner_key).status_code == 200
    assert allocate(service, people, {"health": 1}, service.admin_key).status_code == 200
    # And an allocate key scores nothing.
    assert service.score(people, key=planner_key).status_code == 403


def test_when_the_audit_log_fails_nothing_is_answered_and_no_row_exists(
    service: Service, planner_key: str, cohort_assessments: list[dict[str, Any]]
) -> None:
    engine = service.client.app.state.scoring.audit.engine  # type: ignore[attr-defined]

    def refuse(conn: Any) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(engine, "commit", refuse)
    try:
        response = allocate(service, cohort_assessments[:50], {"drugs_alcohol": 10}, planner_key)
    finally:
        event.remove(engine, "commit", refuse)
    assert response.status_code == 503
    assert response.json()["error"] == "audit_unavailable"
    assert "allocations" not in response.json()
    assert recommendation_rows(service.settings) == 0
    assert logged(service, allocation_audit_table) == []


def test_the_route_is_documented_with_an_example_it_answers(
    service: Service, planner_key: str
) -> None:
    document = service.client.get("/openapi.json", headers=service.headers()).json()
    operation = document["paths"][ROUTE]["post"]
    example = operation["requestBody"]["content"]["application/json"]["example"]
    assert set(example) == {"assessments", "places"}
    answered = service.client.post(ROUTE, json=example, headers=service.headers(planner_key))
    assert answered.status_code == 200, answered.text
    PathwayAllocationResponse.model_validate(answered.json())
    PathwayAllocationResponse.model_validate(EXAMPLE_ALLOCATION)
    assert "PathwayAllocationRequest" in document["components"]["schemas"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["$ref"].endswith("/PathwayAllocationResponse")
    assert {"403", "413", "422", "503"} <= set(operation["responses"])
