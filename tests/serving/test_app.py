from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from benchmarks.support.assessments import assessment
from benchmarks.support.registry import Store
from models.contract.tags import TAG_AUDIT_ONLY, TAG_DIGEST, TAG_FEATURES
from serving.database import audit_table, make_engine
from serving.logs import get_logger
from serving.schemas import RiskScoreResponse
from tests.support.serving import Service, audit_rows, make_settings, start_service

# --- scoring ---


def test_scores_a_batch_with_reasons_and_the_model_version(service: Service) -> None:
    batch = [assessment(subject_ref="a"), assessment(subject_ref="b", drug_misuse=None)]
    response = service.score(batch)
    assert response.status_code == 200
    body = response.json()
    # The body is serialised from plain values for speed: it must still match its documented schema.
    RiskScoreResponse.model_validate(body)
    assert body["model_name"] == "desist-risk" and body["model_version"] == "1"
    assert body["request_id"] == response.headers["x-request-id"]
    assert [s["subject_ref"] for s in body["scores"]] == ["a", "b"]
    for score in body["scores"]:
        assert 0 < score["risk_probability"] < 1
        assert score["risk_band"] in ("low", "medium", "high", "very high")
        assert len(score["reasons"]) == 3
        assert set(score["reasons"][0]) == {"feature", "value", "contribution", "direction"}


def test_needs_items_left_out_are_accepted_as_not_assessed(service: Service) -> None:
    bare = {
        "subject_ref": "x",
        "age": 30,
        "total_sanctions": 2,
        "offence_category": "theft",
    }
    response = service.score([bare])
    assert response.status_code == 200
    explicit_nulls = service.score([{**bare, "drug_misuse": None, "unemployed": None}])
    assert (
        explicit_nulls.json()["scores"][0]["risk_probability"]
        == response.json()["scores"][0]["risk_probability"]
    )


# --- 422: each kind names the assessment and the field ---


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"favourite_colour": "blue"}, "favourite_colour", "unknown field"),
        ({"age": 12}, "age", "out of range (16 to 100): 12"),
        (
            {"drug_misuse": 3},
            "drug_misuse",
            "out of range (0 (no problems), 1 (some problems) or 2 (significant problems)): 3",
        ),
        ({"age": "30"}, "age", "valid integer"),
        ({"months_offence_free": "4"}, "months_offence_free", "valid number"),
        ({"age_first_sanction": 40}, "age_first_sanction", "above age"),
        ({"juvenile_sanctions": 9}, "juvenile_sanctions", "exceed total sanctions"),
        (
            {"offence_category": "arson"},
            "offence_category",
            "unknown category 'arson' (expected one of violence, robbery, burglary",
        ),
        ({"reoffended_12m": 1}, "reoffended_12m", "unknown field"),
    ],
)
def test_each_bad_value_gets_422_naming_index_and_field(
    service: Service, change: dict[str, Any], field: str, reason: str
) -> None:
    response = service.score([assessment(), assessment(**change)])
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert len(body["violations"]) == 1
    (violation,) = body["violations"]
    assert violation["assessment_index"] == 1
    assert violation["field"] == field
    assert reason in violation["reason"]


def test_required_field_missing_and_nan_are_422(service: Service) -> None:
    response = service.score([{k: v for k, v in assessment().items() if k != "age"}])
    assert response.json()["violations"] == [
        {"assessment_index": 0, "field": "age", "reason": "required field is missing"}
    ]
    raw = json.dumps({"assessments": [assessment()]}).replace("4.5", "NaN")
    nan = service.client.post(
        "/v1/risk-scores",
        content=raw,
        headers={**service.headers(), "content-type": "application/json"},
    )
    assert nan.status_code == 422
    assert nan.json()["violations"][0]["field"] == "months_offence_free"


def test_empty_batch_and_bad_json_are_422(service: Service) -> None:
    empty = service.score([])
    assert empty.status_code == 422
    assert empty.json()["violations"][0]["field"] == "assessments"
    broken = service.client.post(
        "/v1/risk-scores",
        content=b'{"assessments": [',
        headers={**service.headers(), "content-type": "application/json"},
    )
    assert broken.status_code == 422
    assert broken.json()["violations"][0]["assessment_index"] is None


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_declared_as_json_is_415_and_scores_nothing(
    service: Service, content_type: str | None
) -> None:
    headers = service.headers()
    if content_type is not None:
        headers["content-type"] = content_type
    response = service.client.post(
        "/v1/risk-scores",
        content=json.dumps({"assessments": [assessment()]}),
        headers=headers,
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert audit_rows(service.settings) == 0


def test_a_json_suffix_media_type_and_charset_are_accepted(service: Service) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.desist+json"):
        response = service.client.post(
            "/v1/risk-scores",
            content=json.dumps({"assessments": [assessment()]}),
            headers={**service.headers(), "content-type": content_type},
        )
        assert response.status_code == 200, content_type


# --- 413 ---


@pytest.fixture
def small_limits(trained_store: Store, tmp_path: Path) -> Iterator[Service]:
    yield from start_service(
        make_settings(trained_store, tmp_path, max_batch=5, max_body_bytes=1800)
    )


def test_batch_over_the_limit_is_413(small_limits: Service) -> None:
    assert small_limits.score([assessment()] * 5).status_code == 200
    response = small_limits.score([assessment()] * 6)
    assert response.status_code == 413
    assert "at most 5" in response.json()["detail"]


def test_body_over_the_limit_is_413_declared_or_streamed(small_limits: Service) -> None:
    padded = [assessment(subject_ref="x" * 128)] * 5
    declared = small_limits.score(padded)
    assert declared.status_code == 413
    assert declared.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield json.dumps({"assessments": padded}).encode()

    streamed = small_limits.client.post(
        "/v1/risk-scores",
        content=chunks(),
        headers={**small_limits.headers(), "content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert audit_rows(small_limits.settings) == 0


# --- authentication ---


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer dsk_000000000000_notakey"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_missing_or_invalid_key_is_401(service: Service, headers: dict[str, str]) -> None:
    response = service.client.post(
        "/v1/risk-scores", json={"assessments": [assessment()]}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthenticated"


def test_a_key_with_a_wrong_secret_is_401(service: Service) -> None:
    tampered = service.score_key[:-4] + (
        "AAAA" if not service.score_key.endswith("AAAA") else "BBBB"
    )
    assert service.score([assessment()], key=tampered).status_code == 401


def test_scope_score_cannot_reload_but_admin_can_score(service: Service) -> None:
    denied = service.client.post("/admin/reload", headers=service.headers(service.score_key))
    assert denied.status_code == 403
    assert denied.json()["error"] == "forbidden"
    assert service.score([assessment()], key=service.admin_key).status_code == 200


def test_keys_never_reach_the_logs(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="desist"):
        service.score([assessment(subject_ref="secret-subject")])
        service.score([assessment()], key=service.score_key + "x")
    lines = [r for r in caplog.records if r.name == get_logger("serving.requests").name]
    assert len(lines) == 2
    first = lines[0].__dict__
    assert first["client"] == "case-system" and first["status"] == 200
    assert first["route"] == "/v1/risk-scores" and first["latency_ms"] > 0
    assert len(first["request_id"]) == 32
    everything = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert service.score_key not in everything
    assert "secret-subject" not in everything


# --- audit ---


def test_audit_rows_equal_successful_scores(service: Service) -> None:
    for size in (1, 3, 7):
        assert service.score([assessment(subject_ref=f"s{i}") for i in range(size)]).is_success
    service.score([assessment(age=3)])  # refused: nothing recorded
    service.score([assessment()], key="dsk_x_y")  # unauthenticated: nothing recorded
    assert audit_rows(service.settings) == 11
    engine = make_engine(service.settings.resolved_database_url())
    with engine.connect() as conn:
        rows = conn.execute(select(audit_table).order_by(audit_table.c.id)).all()
    engine.dispose()
    assert {r.client for r in rows} == {"case-system"}
    assert {r.model_version for r in rows} == {"1"}
    assert len({r.request_id for r in rows}) == 3
    assert all(r.input_digest.startswith("sha256:") for r in rows)


def test_failed_audit_write_fails_the_request_without_scores(service: Service) -> None:
    assert service.score([assessment()]).status_code == 200
    engine = make_engine(service.settings.resolved_database_url())
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_scores"))
    engine.dispose()
    response = service.score([assessment(subject_ref="unrecorded")])
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "audit_unavailable"
    assert "scores" not in body and "risk_probability" not in response.text


# --- models, health, metrics, docs ---


def test_models_endpoint_describes_the_served_version(service: Service) -> None:
    (described,) = service.client.get("/v1/models", headers=service.headers()).json()["models"]
    assert described["version"] == "1"
    assert described["family"] == "scorecard"
    assert described["trained_at"] and described["dataset"]["name"] == "synthetic-test"
    assert 0.5 < described["metrics"]["test_roc_auc"] < 1
    assert described["model_card"] == "/v1/models/desist-risk/1/card"
    assert described["artifact_digest"].startswith("sha256:")


def test_health_and_readiness(service: Service) -> None:
    assert service.client.get("/healthz").json() == {"status": "alive"}
    ready = service.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["version"] == "1"


def test_the_gil_switch_interval_is_the_setting_while_serving_and_restored_after(
    trained_store: Store, tmp_path: Path
) -> None:
    before = sys.getswitchinterval()
    settings = make_settings(trained_store, tmp_path, gil_switch_interval_ms=0.25)
    for service in start_service(settings):
        assert service.score([assessment()]).status_code == 200
        assert sys.getswitchinterval() == pytest.approx(0.00025)
    assert sys.getswitchinterval() == before


def test_metrics_count_requests_latency_errors_and_bands(service: Service) -> None:
    service.score([assessment(), assessment(subject_ref="b")])
    service.score([assessment(age=2)])
    text_body = service.client.get("/metrics", headers=service.headers()).text
    assert 'desist_requests_total{method="POST",route="/v1/risk-scores",status="200"' in text_body
    assert 'route="/v1/risk-scores",status="422"' in text_body
    assert "desist_request_duration_seconds_bucket{" in text_body
    assert 'le="+Inf"' in text_body
    assert 'desist_errors_total{kind="validation"' in text_body
    bands = [line for line in text_body.splitlines() if line.startswith("desist_scores_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in bands) == 2


def test_openapi_documents_every_field_with_its_range(service: Service) -> None:
    schema = service.client.get("/openapi.json", headers=service.headers()).json()
    fields = schema["components"]["schemas"]["Assessment"]["properties"]
    assert "reoffended_12m" not in fields and "referred_health" not in fields
    assert all("Allowed:" in spec["description"] for spec in fields.values())
    assert fields["age"]["minimum"] == 16 and fields["age"]["maximum"] == 100
    assert "not assessed" in fields["drug_misuse"]["description"]
    body = schema["paths"]["/v1/risk-scores"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    request = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert request["properties"]["assessments"]["items"]["$ref"].endswith("/Assessment")
    # The limit is in the description, not maxItems: over it the answer is 413, which
    # schema-driven clients would not expect for a maxItems violation.
    assert "maxItems" not in request["properties"]["assessments"]
    assert (
        f"1 to {service.settings.max_batch}" in request["properties"]["assessments"]["description"]
    )
    assert service.client.get("/docs", headers=service.headers()).status_code == 200


def test_unexpected_errors_do_not_leak_details(service: Service) -> None:
    holder = service.client.app.state.holder  # type: ignore[attr-defined]
    model = holder.current

    class Exploding:
        def score(self, _items: object) -> None:
            raise RuntimeError("secret internals /etc/passwd")

    holder.current = type(model)(
        name=model.name,
        version=model.version,
        alias=model.alias,
        scorer=Exploding(),  # type: ignore[arg-type]
        digest=model.digest,
        tags=model.tags,
    )
    client = service.client
    client_no_raise = type(client)(client.app, raise_server_exceptions=False)
    response = client_no_raise.post(
        "/v1/risk-scores", json={"assessments": [assessment()]}, headers=service.headers()
    )
    assert response.status_code == 500
    assert "secret" not in response.text
    assert response.json()["error"] == "internal_error"


# --- reload ---


def test_reload_under_concurrent_requests_loses_none(store: Store, tmp_path: Path) -> None:
    for service in start_service(make_settings(store, tmp_path)):
        check_reload_under_load(store, service)


def check_reload_under_load(store: Store, service: Service) -> None:
    results: list[tuple[int, str | None]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        try:
            while not stop.is_set():
                response = service.score([assessment()])
                version = response.json().get("model_version") if response.is_success else None
                results.append((response.status_code, version))
        except BaseException as err:  # reported below, in the test thread
            errors.append(err)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        while len(results) < 20:
            threading.Event().wait(0.01)
        store.set_champion(store.add_version())
        reloaded = service.client.post("/admin/reload", headers=service.headers(service.admin_key))
        done = len(results)
        while len(results) < done + 20:
            threading.Event().wait(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors
    assert reloaded.status_code == 200
    assert reloaded.json()["previous_version"] == "1"
    assert reloaded.json()["model"]["version"] == "2"
    assert all(status == 200 for status, _ in results)
    versions = [version for _, version in results]
    assert set(versions) <= {"1", "2"} and versions[-1] == "2"
    assert audit_rows(service.settings) == len(results)


def test_failed_reload_keeps_the_old_model(store: Store, service_on_store: Service) -> None:
    store.set_champion(store.add_version(**{TAG_DIGEST: "sha256:" + "0" * 64}))
    response = service_on_store.client.post(
        "/admin/reload", headers=service_on_store.headers(service_on_store.admin_key)
    )
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "still serving version 1" in detail and "does not match" in detail
    assert service_on_store.client.get("/readyz").status_code == 200
    assert service_on_store.score([assessment()]).json()["model_version"] == "1"


@pytest.fixture
def service_on_store(store: Store, tmp_path: Path) -> Iterator[Service]:
    yield from start_service(make_settings(store, tmp_path))


def test_digest_mismatch_at_start_is_not_ready_with_the_reason(
    store: Store, tmp_path: Path
) -> None:
    store.set_champion(store.add_version(**{TAG_DIGEST: "sha256:" + "f" * 64}))
    for service in start_service(make_settings(store, tmp_path)):
        ready = service.client.get("/readyz")
        assert ready.status_code == 503
        # The public reason names the kind of failure, never digests, names or paths.
        assert (
            ready.json()["detail"] == "no risk model loaded: the model failed its integrity check"
        )
        assert "sha256" not in ready.text
        reload = service.client.post("/admin/reload", headers=service.headers(service.admin_key))
        assert "does not match the registered sha256:fff" in reload.json()["detail"]
        assert service.client.get("/healthz").status_code == 200
        scored = service.score([assessment()])
        assert scored.status_code == 503 and scored.json()["error"] == "model_unavailable"


def test_alias_poll_picks_up_a_new_champion(store: Store, tmp_path: Path) -> None:
    for service in start_service(make_settings(store, tmp_path, poll_seconds=0.2)):
        store.set_champion(store.add_version())
        for _ in range(100):
            if service.score([assessment()]).json()["model_version"] == "2":
                break
            threading.Event().wait(0.1)
        else:
            pytest.fail("the poll never loaded version 2")


def test_unauthenticated_callers_learn_nothing_about_the_model(
    store: Store, tmp_path: Path
) -> None:
    store.set_champion(store.add_version(**{TAG_DIGEST: "sha256:" + "f" * 64}))
    for service in start_service(make_settings(store, tmp_path)):
        for answer in (
            service.client.post("/v1/risk-scores", json={"assessments": [assessment()]}),
            service.client.get("/v1/models"),
        ):
            assert answer.status_code == 401
            assert "desist-risk" not in answer.text and "sha256" not in answer.text


@pytest.mark.parametrize(
    "tags",
    [
        {TAG_AUDIT_ONLY: '["ethnicity", "sex", "age"]'},
        {TAG_FEATURES: '["age"]'},
    ],
)
def test_a_model_using_audit_only_fields_or_mislabelled_is_never_served(
    store: Store, tmp_path: Path, tags: dict[str, str]
) -> None:
    store.set_champion(store.add_version(**tags))
    for service in start_service(make_settings(store, tmp_path)):
        assert service.client.get("/readyz").status_code == 503
        assert service.score([assessment()]).status_code == 503
