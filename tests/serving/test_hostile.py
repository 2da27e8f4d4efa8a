"""Hostile and malformed input: generated from the OpenAPI schema, and written by hand.

Every refusal must be a 4xx with an ``ErrorBody``, never a 5xx, and must
leave nothing in the audit log. ``DESIST_FUZZ_EXAMPLES`` sets the generated
requests per operation, mode and key (default 10: about 300 requests in
total); ``benchmarks/bench_fuzz.py`` sends thousands over HTTP.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import select

from benchmarks.support.assessments import assessment
from benchmarks.support.fuzzing import fuzz
from benchmarks.support.registry import Store
from serving.app import create_app
from serving.audit import input_digest
from serving.commands import create_key, export_audit
from serving.database import (
    audit_table,
    decision_audit_table,
    make_engine,
    outcome_audit_table,
)
from serving.errors import KeyStoreError
from serving.keys import KeyStore
from tests.support.serving import (
    Service,
    audit_rows,
    make_settings,
    recommendation_rows,
    start_service,
)

EXAMPLES = int(os.environ.get("DESIST_FUZZ_EXAMPLES", "10"))


def test_generated_requests_get_no_5xx_and_match_the_schema(
    pathway_store: Store, tmp_path: Path
) -> None:
    # Both models served, so every operation (pathways too) answers for real.
    settings = make_settings(pathway_store, tmp_path)
    keys = {
        "no key": None,
        "score key": create_key("fuzz-score", "score", settings=settings),
        "admin key": create_key("fuzz-admin", "admin", settings=settings),
        "outcomes key": create_key("fuzz-outcomes", "outcomes", settings=settings),
    }
    app = create_app(settings)
    try:
        schema = schemathesis.openapi.from_asgi(
            "/openapi.json", app, headers={"Authorization": f"Bearer {keys['score key']}"}
        )
        report = fuzz(schema, keys, examples=EXAMPLES)
    finally:
        shutdown_lifespans()
    assert report.server_errors == []
    assert report.failures == []
    # Every operation was reached, and with and without a valid key.
    operations = {label.rsplit(" ", 3)[0] for label in report.by_operation}
    assert operations >= {
        "POST /v1/risk-scores",
        "POST /v1/pathway-recommendations",
        "POST /v1/pathway-allocations",
        "POST /v1/decisions",
        "POST /v1/outcomes",
        "GET /v1/models",
        "GET /v1/models/{name}/{version}/card",
        "POST /admin/reload",
        "GET /metrics",
    }
    assert {200, 201, 401, 403, 404, 422} <= set(report.statuses)
    assert report.requests >= 10 * EXAMPLES
    # Nothing answered went unrecorded, nothing refused was recorded.
    assert audit_rows(settings) == report.scores_returned > 0
    assert recommendation_rows(settings) == report.recommendations_returned > 0
    assert audit_rows(settings, decision_audit_table) == report.decisions_recorded > 0
    assert audit_rows(settings, outcome_audit_table) == report.outcomes_recorded
    # Steered to what was served, decisions and cards were answered for real.
    assert report.statuses_by_operation["GET /v1/models/{name}/{version}/card"][200] > 0


def post(service: Service, body: bytes | str, content_type: str = "application/json") -> Any:
    return service.client.post(
        "/v1/risk-scores",
        content=body,
        headers={**service.headers(), "content-type": content_type},
    )


def refused(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) <= {"error", "detail", "request_id", "violations", "violation_count"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


VALID = json.dumps({"assessments": [assessment()]})


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("hello, this is not JSON", "application/json", 422),
        (b'{"assessments": "caf\xe9"}', "application/json", 422),
        ("", "application/json", 422),
        (VALID, "text/plain", 415),
        (VALID, "application/x-www-form-urlencoded", 415),
        ("assessments=1", "application/x-www-form-urlencoded", 415),
        # pydantic-core's parser stops at its nesting limit: no deep recursion in the service.
        ('{"assessments": ' + "[" * 50_000 + "]" * 50_000 + "}", "application/json", 422),
        ("[" * 200_000, "application/json", 422),
        ('{"assessments": null}', "application/json", 422),
        ('{"assessments": {"0": {}}}', "application/json", 422),
        ("[]", "application/json", 422),
        ('"just a string"', "application/json", 422),
    ],
    ids=[
        "not-json",
        "latin-1-not-utf8",
        "empty",
        "json-as-text-plain",
        "json-as-form",
        "form",
        "nested-50k",
        "unclosed-200k",
        "null-batch",
        "object-batch",
        "top-level-array",
        "top-level-string",
    ],
)
def test_malformed_bodies_are_refused_cleanly(
    service: Service, body: bytes | str, content_type: str, status: int
) -> None:
    refused(post(service, body, content_type), status)
    assert audit_rows(service.settings) == 0
    assert service.score([assessment()]).status_code == 200  # still serving


@pytest.mark.parametrize(
    ("literal", "field"),
    [("NaN", "months_offence_free"), ("Infinity", "months_offence_free"), ("-Infinity", "age")],
)
def test_nan_and_infinities_are_422(service: Service, literal: str, field: str) -> None:
    raw = json.dumps({"assessments": [assessment(**{field: 0})]})
    raw = raw.replace(f'"{field}": 0', f'"{field}": {literal}')
    body = refused(post(service, raw), 422)
    assert body["violations"][0]["field"] == field
    assert audit_rows(service.settings) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"age": "thirty"}, "age"),
        ({"total_sanctions": "6"}, "total_sanctions"),
        ({"months_offence_free": [4.5]}, "months_offence_free"),
        ({"age": True}, "age"),
        ({"total_sanctions": -1}, "total_sanctions"),
        ({"juvenile_sanctions": -3}, "juvenile_sanctions"),
        ({"months_offence_free": -0.5}, "months_offence_free"),
        ({"age": 10**30}, "age"),
        ({"age": 27.5}, "age"),
        ({"subject_ref": 17}, "subject_ref"),
        ({"subject_ref": ""}, "subject_ref"),
        ({"subject_ref": "x" * 129}, "subject_ref"),
        ({"subject_ref": "case\u0000-1"}, "subject_ref"),
        ({"subject_ref": "case\n=cmd()"}, "subject_ref"),
        ({"offence_category": {"$ne": None}}, "offence_category"),
    ],
)
def test_wrong_types_negative_counts_and_bad_references_are_422(
    service: Service, change: dict[str, Any], field: str
) -> None:
    body = refused(service.score([assessment(**change)]), 422)
    assert [v["field"] for v in body["violations"]] == [field]
    assert body["violations"][0]["assessment_index"] == 0
    assert audit_rows(service.settings) == 0


#: Characters that end a line for some reader, or control a terminal: C0, DEL, C1 (NEL among
#: them), and the Unicode line and paragraph separators.
LINE_BREAKERS = [
    "\u0000",
    "\n",
    "\r",
    "\u000b",
    "\u001b",
    "\u007f",
    "\u0080",
    "\u0085",
    "\u009b",
    "\u009f",
    "\u2028",
    "\u2029",
]


@pytest.mark.parametrize("char", LINE_BREAKERS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKERS])
def test_control_characters_and_line_separators_in_references_are_422(
    service: Service, char: str
) -> None:
    body = refused(service.score([assessment(subject_ref=f"case{char}=cmd()")]), 422)
    assert [v["field"] for v in body["violations"]] == ["subject_ref"]
    assert audit_rows(service.settings) == 0


@pytest.mark.parametrize("char", LINE_BREAKERS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKERS])
def test_client_names_with_control_characters_or_separators_are_refused(
    tmp_path: Path, char: str
) -> None:
    keys = KeyStore(make_engine(f"sqlite:///{tmp_path / 'k.db'}"))
    with pytest.raises(KeyStoreError):
        keys.create_key(f"client{char}x", "score")


def test_an_export_has_one_line_per_row_for_any_accepted_reference(
    service: Service, tmp_path: Path
) -> None:
    refs = ["Zoë", "日本", "\u202eevil-rtl", "a\u00a0b", "tab\u200bzero", "=1+1", 'quote"d,comma']
    assert service.score([assessment(subject_ref=r) for r in refs]).status_code == 200
    out = tmp_path / "audit.csv"
    assert export_audit(None, out, settings=service.settings) == len(refs)
    # Read as a line-based tool would: every separator str.splitlines knows.
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(refs)


def test_unicode_references_are_scored_echoed_and_audited_exactly(service: Service) -> None:
    refs = ["Zoë-Łukasz-42", "日本-事件-7", "سجل-٣", "case-😀", "\u202eevil-rtl", "ﬁ-ligature"]
    response = service.score([assessment(subject_ref=ref) for ref in refs])
    assert response.status_code == 200
    assert [s["subject_ref"] for s in response.json()["scores"]] == refs
    engine = make_engine(service.settings.resolved_database_url())
    with engine.connect() as conn:
        stored = conn.execute(select(audit_table.c.subject_ref).order_by(audit_table.c.id))
        assert [row.subject_ref for row in stored] == refs
    engine.dispose()


def test_duplicate_keys_take_the_last_value_and_the_audit_digest_says_which(
    service: Service,
) -> None:
    item = json.dumps(assessment(age=40))
    duplicated = item[:-1] + ', "age": 30}'
    response = post(service, '{"assessments": [' + duplicated + "]}")
    assert response.status_code == 200
    thirty = service.score([assessment(age=30)]).json()["scores"][0]
    assert response.json()["scores"][0]["risk_probability"] == thirty["risk_probability"]
    from data.schema import make_assessment_model

    expected = input_digest(make_assessment_model().model_validate(assessment(age=30)))
    engine = make_engine(service.settings.resolved_database_url())
    with engine.connect() as conn:
        digests = conn.execute(select(audit_table.c.input_digest)).scalars().all()
    engine.dispose()
    assert digests == [expected, expected]


def test_a_duplicated_batch_key_is_still_one_batch(service: Service) -> None:
    one = json.dumps([assessment(subject_ref="first")])
    two = json.dumps([assessment(subject_ref="second"), assessment(subject_ref="third")])
    response = post(service, f'{{"assessments": {one}, "assessments": {two}}}')
    assert [s["subject_ref"] for s in response.json()["scores"]] == ["second", "third"]
    assert audit_rows(service.settings) == 2


@pytest.fixture
def small_batches(trained_store: Store, tmp_path: Path) -> Iterator[Service]:
    yield from start_service(make_settings(trained_store, tmp_path, max_batch=3))


def test_a_batch_over_the_limit_is_413_before_any_item_is_read(small_batches: Service) -> None:
    # Items that would each fail validation: the size check comes first and answers alone.
    body = refused(small_batches.score([{"age": "x"}] * 4), 413)
    assert body["error"] == "payload_too_large" and "at most 3" in body["detail"]
    assert audit_rows(small_batches.settings) == 0


def test_unknown_methods_and_paths_are_4xx(service: Service) -> None:
    assert service.client.get("/v1/risk-scores", headers=service.headers()).status_code == 405
    assert service.client.delete("/v1/models", headers=service.headers()).status_code == 405
    assert service.client.get("/v1/../admin/reload").status_code in (404, 405)
    assert service.client.get("/%00").status_code == 404
    assert service.client.post("/v1/risk-scores?assessments=1").status_code == 401
