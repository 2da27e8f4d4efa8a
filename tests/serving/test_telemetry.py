"""FastAPI's OpenTelemetry support: skipped without a provider, working with one."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import opentelemetry.trace
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from serving.settings import Settings
from tests.support.serving import start_service

running_service = contextmanager(start_service)


def _one(cohort_assessments: list[dict[str, Any]]) -> dict[str, Any]:
    return {"assessments": cohort_assessments[:1]}


def test_without_a_provider_requests_do_not_ask_for_one(
    settings: Settings,
    cohort_assessments: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []
    real = opentelemetry.trace.get_tracer_provider

    def counting() -> Any:
        asked.append(1)
        return real()

    with running_service(settings) as running:
        native = running.client.app._native_telemetry  # type: ignore[attr-defined]
        monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", counting)
        for _ in range(3):
            answer = running.client.post(
                "/v1/risk-scores", json=_one(cohort_assessments), headers=running.headers()
            )
            assert answer.status_code == 200
        assert asked == []
        assert native.enabled() is False
    # Stopped: FastAPI's own check is back (a later start decides again).
    assert "enabled" not in vars(native)


def test_a_provider_configured_before_start_gets_the_request_spans(
    settings: Settings,
    cohort_assessments: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    # As the global provider an operator's opentelemetry-instrument would set (a real
    # set_tracer_provider can happen once per process only).
    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", lambda: provider)
    with running_service(settings) as running:
        answer = running.client.post(
            "/v1/risk-scores", json=_one(cohort_assessments), headers=running.headers()
        )
        assert answer.status_code == 200
    names = [span.name for span in spans.get_finished_spans()]
    assert "POST /v1/risk-scores" in names
    # FastAPI's own handler, not the batch routes' shortcut: it traces the key check's
    # resolution and the endpoint.
    assert {"fastapi.dependencies", "fastapi.endpoint"} <= set(names)
