"""Batch routes call their key check and endpoint directly, and FastAPI's handler otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient

from serving.dependencies import AdminDep, ClientDep, KeyCheck
from serving.error_handlers import install_error_handlers
from serving.keys import Client
from serving.metrics import Metrics
from serving.routes.batch import KeyCheckedRoute
from tests.support.serving import Service, key_store_with_key


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts FastAPI's dependency resolutions (one per dependant solved)."""
    calls: list[int] = []
    real = fastapi.routing.solve_dependencies

    async def counting(**kwargs: Any) -> Any:
        calls.append(1)
        return await real(**kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


def small_app(tmp_path: Path, router: APIRouter, **include: Any) -> tuple[FastAPI, str]:
    """An app with ``router`` included, a key store with one score key, the errors mapped."""
    app = FastAPI()
    install_error_handlers(app, Metrics())
    keys, _, key = key_store_with_key(tmp_path, cache_seconds=60)
    app.state.keys = keys
    app.include_router(router, **include)
    return app, key


def test_scoring_skips_fastapis_resolution_with_the_same_answers(
    service: Service, cohort_assessments: list[dict[str, Any]], resolutions: list[int]
) -> None:
    body = {"assessments": cohort_assessments[:1]}
    answer = service.client.post("/v1/risk-scores", json=body, headers=service.headers())
    assert answer.status_code == 200 and len(answer.json()["scores"]) == 1
    refused = service.client.post("/v1/risk-scores", json=body, headers=service.headers("dsk_x"))
    assert refused.status_code == 401 and refused.json()["error"] == "unauthenticated"
    missing = service.client.post("/v1/pathway-recommendations", json=body)
    assert missing.status_code == 401
    assert resolutions == []
    # Other routes still go through FastAPI's resolution.
    assert service.client.get("/v1/models", headers=service.headers()).status_code == 200
    assert resolutions != []


def test_dependency_overrides_are_honoured(
    service: Service, cohort_assessments: list[dict[str, Any]], resolutions: list[int]
) -> None:
    app: Any = service.client.app
    check = get_args(ClientDep)[1].dependency  # the score routes' KeyCheck
    assert isinstance(check, KeyCheck)
    app.dependency_overrides[check] = lambda: Client("stand-in", "outcomes", "0")
    try:
        body = {"assessments": cohort_assessments[:1]}
        answer = service.client.post("/v1/risk-scores", json=body)  # no key: the override
        assert answer.status_code == 200
        assert resolutions != []
    finally:
        app.dependency_overrides.clear()


def test_a_route_of_another_shape_gets_fastapis_handler(
    tmp_path: Path, resolutions: list[int]
) -> None:
    router = APIRouter(route_class=KeyCheckedRoute)

    @router.get("/plain")
    async def plain(request: Request, client: ClientDep) -> Response:
        return JSONResponse({"client": client.name})

    @router.get("/more")
    async def more(request: Request, client: ClientDep, n: int = 1) -> Response:
        return JSONResponse({"client": client.name, "n": n})

    app, key = small_app(tmp_path, router)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/plain", headers=headers).json() == {"client": "c"}
        assert resolutions == []
        assert client.get("/more?n=3", headers=headers).json() == {"client": "c", "n": 3}
        assert resolutions != []
        assert client.get("/more?n=x", headers=headers).status_code == 422


def test_dependencies_added_where_the_router_is_included_still_run(tmp_path: Path) -> None:
    router = APIRouter(route_class=KeyCheckedRoute)
    seen: list[str] = []

    @router.get("/plain")
    async def plain(request: Request, client: ClientDep) -> Response:
        return JSONResponse({"client": client.name})

    async def audit_trail(request: Request) -> None:
        seen.append(request.url.path)

    app, key = small_app(tmp_path, router, dependencies=[Depends(audit_trail)])
    with TestClient(app) as client:
        answer = client.get("/plain", headers={"Authorization": f"Bearer {key}"})
    assert answer.json() == {"client": "c"}
    assert seen == ["/plain"]


def test_the_key_check_and_its_scope_hold_on_the_shortcut(tmp_path: Path) -> None:
    router = APIRouter(route_class=KeyCheckedRoute)

    @router.get("/admin-only")
    async def admin_only(request: Request, client: AdminDep) -> Response:
        return JSONResponse({"client": client.name})

    app, key = small_app(tmp_path, router)
    with TestClient(app) as client:
        assert client.get("/admin-only").status_code == 401
        denied = client.get("/admin-only", headers={"Authorization": f"Bearer {key}"})
    assert denied.status_code == 403
    assert denied.json()["detail"] == "this key's scope (score) does not allow admin"
