"""The request context: an id on every answer, a body cap, one log line and metrics per request."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from serving.error_handlers import install_error_handlers
from serving.logs import JsonFormatter, get_logger
from serving.metrics import Metrics
from serving.middleware import _ID_BATCH, RequestContextMiddleware, _request_ids


def make_app(limit: int = 100) -> tuple[FastAPI, Metrics]:
    app = FastAPI()
    metrics = Metrics()
    install_error_handlers(app, metrics)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    app.add_middleware(RequestContextMiddleware, max_body_bytes=limit, metrics=metrics)
    return app, metrics


def test_every_answer_carries_a_request_id_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    app, metrics = make_app()
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        first = client.post("/echo", content=b"x" * 10)
        second = client.get("/nowhere")
    assert first.status_code == 200 and first.json() == {"bytes": 10}
    ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
    assert len(ids) == 2
    lines = [r for r in caplog.records if r.name == get_logger("serving.requests").name]
    assert [(r.__dict__["route"], r.__dict__["status"]) for r in lines] == [
        ("/echo", 200),
        ("unmatched", 404),
    ]
    assert {r.__dict__["request_id"] for r in lines} == ids
    assert 'route="/echo"' in metrics.render()


def test_a_declared_oversized_body_is_refused_before_it_is_read() -> None:
    app, _ = make_app(limit=100)
    with TestClient(app) as client:
        response = client.post("/echo", content=b"x" * 101)
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "payload_too_large"
    assert body["request_id"] == response.headers["x-request-id"]


def test_a_streamed_body_is_cut_at_the_limit() -> None:
    app, _ = make_app(limit=100)

    def chunks():  # type: ignore[no-untyped-def]
        yield b"x" * 60
        yield b"x" * 60

    with TestClient(app) as client:
        response = client.post("/echo", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_request_ids_are_random_uuids_as_uuid4_makes_them() -> None:
    ids = _request_ids()
    drawn = [next(ids) for _ in range(3 * _ID_BATCH)]  # across refills of the random bytes
    assert len(set(drawn)) == len(drawn)
    for request_id in drawn:
        parsed = uuid.UUID(request_id)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert parsed.hex == request_id and len(request_id) == 32


def test_the_request_line_has_its_fields_in_order(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = make_app()
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        answer = client.post("/echo", content=b"x" * 10)
    (record,) = [r for r in caplog.records if r.name == get_logger("serving.requests").name]
    line = json.loads(JsonFormatter().format(record))
    assert list(line) == [
        "time",
        "level",
        "logger",
        "message",
        "request_id",
        "client",
        "method",
        "route",
        "status",
        "latency_ms",
    ]
    assert line["request_id"] == answer.headers["x-request-id"]
    assert (line["level"], line["logger"], line["message"]) == ("info", record.name, "request")
    assert (line["client"], line["method"], line["route"], line["status"]) == (
        None,
        "POST",
        "/echo",
        200,
    )
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
    assert record.pathname.endswith("middleware.py") and record.funcName == "__call__"
