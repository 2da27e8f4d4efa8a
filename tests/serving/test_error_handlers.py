"""The one error-to-HTTP mapping: every error gets its status, code and body; never a 200."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from data.errors import DesistError
from models.contract.errors import ModelIntegrityError, ModelUnavailableError
from serving.error_handlers import STATUS, install_error_handlers
from serving.errors import (
    AuditWriteError,
    AuthenticationError,
    InvalidRequestError,
    KeyStoreError,
    PermissionDeniedError,
)
from serving.metrics import Metrics
from serving.schemas import BATCH_TOO_LARGE


@pytest.fixture
def raising() -> Iterator[tuple[TestClient, list[Exception]]]:
    """An app whose one route raises the next error of a list."""
    app = FastAPI()
    install_error_handlers(app, Metrics())
    errors: list[Exception] = []

    @app.get("/raise")
    async def raise_next() -> None:
        raise errors.pop(0)

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, errors


def answer(raising: tuple[TestClient, list[Exception]], error: Exception) -> tuple[int, dict]:  # type: ignore[type-arg]
    client, errors = raising
    errors.append(error)
    response = client.get("/raise")
    return response.status_code, response.json()


def test_each_mapped_error_gets_its_status_code_and_message(
    raising: tuple[TestClient, list[Exception]],
) -> None:
    for kind, (status, code) in STATUS.items():
        error = (
            ModelIntegrityError("m", "1", "sha256:a", "sha256:b")
            if kind is ModelIntegrityError
            else kind("a message for the client")
        )
        got_status, body = answer(raising, error)
        assert (got_status, body["error"]) == (status, code)
        assert body["detail"] == str(error)


def test_a_subclass_gets_its_parents_mapping(
    raising: tuple[TestClient, list[Exception]],
) -> None:
    status, body = answer(raising, ModelIntegrityError("m", "1", "sha256:a", "sha256:b"))
    assert (status, body["error"]) == (503, "model_load_failed")


def test_an_unmapped_domain_error_is_a_500_without_its_message(
    raising: tuple[TestClient, list[Exception]],
) -> None:
    status, body = answer(raising, KeyStoreError("secret detail"))
    assert (status, body) == (500, {"error": "internal_error", "detail": "internal error"})
    status, body = answer(raising, DesistError("secret detail"))
    assert status == 500 and "secret" not in body["detail"]


def test_an_unexpected_error_never_shows_its_text(
    raising: tuple[TestClient, list[Exception]],
) -> None:
    status, body = answer(raising, KeyError("/home/someone/credentials"))
    assert status == 500
    assert body["error"] == "internal_error"
    assert "credentials" not in body["detail"]


def test_invalid_requests_are_422_with_violations_or_413_when_too_large(
    raising: tuple[TestClient, list[Exception]],
) -> None:
    problem = {"type": "missing", "loc": ("body", "assessments", 2, "age"), "msg": "Field required"}
    status, body = answer(raising, InvalidRequestError([problem]))
    assert (status, body["error"]) == (422, "invalid_request")
    assert body["violations"] == [
        {"assessment_index": 2, "field": "age", "reason": "required field is missing"}
    ]
    too_large = {"type": BATCH_TOO_LARGE, "loc": ("body", "assessments"), "msg": "too many"}
    status, body = answer(raising, InvalidRequestError([too_large]))
    assert (status, body["error"], body["detail"]) == (413, "payload_too_large", "too many")


def test_401_asks_for_a_bearer_key(raising: tuple[TestClient, list[Exception]]) -> None:
    client, errors = raising
    errors.append(AuthenticationError("missing API key"))
    assert client.get("/raise").headers["www-authenticate"] == "Bearer"
    errors.append(PermissionDeniedError("scope"))
    assert "www-authenticate" not in client.get("/raise").headers


def test_the_table_maps_the_service_errors_documented() -> None:
    assert STATUS[AuditWriteError] == (503, "audit_unavailable")
    assert STATUS[ModelUnavailableError] == (503, "model_unavailable")
