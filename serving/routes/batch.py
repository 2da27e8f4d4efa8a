"""What the routes share: the batch routes' body and declaration, the raw body, the worker."""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

import functools
import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from serving.audit import AuditEntry
from serving.dependencies import KeyCheck
from serving.error_handlers import BATCH_ERROR_RESPONSES
from serving.errors import UnsupportedMediaTypeError
from serving.keys import Client
from serving.registry_loader import LoadedModel, LoadedPathwayModel
from serving.schemas import assessment_batch_model, openapi_request_body
from serving.scoring import Answer
from serving.worker import ScoringWorker

T = TypeVar("T")
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

#: Where FastAPI keeps the route as included in an app (its dependencies with the app's and
#: the including routers'), while it builds that route's handler; absent before 0.165.
_INCLUDED_ROUTE = getattr(fastapi_routing, "_effective_route_context_var", None)


class KeyCheckedRoute(APIRoute):
    """A route whose endpoint takes the request and the client of a :class:`KeyCheck` only.

    Its handler calls the key check, then the endpoint, with what FastAPI's
    dependency resolution would pass them, without that resolution: it cost
    more per one-assessment request than the key check itself (the sub-response,
    cache keys, the query, header and cookie parameters walked per dependency),
    on the event loop. The route is FastAPI's in everything else (matching, its
    OpenAPI operation, its errors, the response it returns).

    FastAPI's own handler still answers whenever the shortcut could differ: an
    endpoint or dependency of any other shape (dependencies added by the app or
    an including router, other parameters), dependency overrides set on the
    app, or a request that FastAPI's OpenTelemetry support observes (it records
    the resolution and the endpoint as spans).
    """

    def get_route_handler(self) -> Handler:
        """Return the handler that calls the key check and the endpoint directly."""
        standard = super().get_route_handler()
        route: Any = self
        included = _INCLUDED_ROUTE.get() if _INCLUDED_ROUTE is not None else None
        if included is not None and included.original_route is self:
            route = included  # as FastAPI's own get_route_handler reads it
        shape = _request_and_key_check(route.dependant)
        if shape is None:
            return standard
        request_name, client_name, check = shape
        endpoint = route.dependant.call
        overrides = route.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            if request.scope.get("fastapi.telemetry") is not None or (
                overrides is not None and getattr(overrides, "dependency_overrides", None)
            ):
                return await standard(request)
            client = await check(request)
            response: Response = await endpoint(**{request_name: request, client_name: client})
            return response

        return handler


def _takes_the_request_only(dependant: Dependant) -> bool:
    return dependant.request_param_name is not None and not (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.http_connection_param_name
        or dependant.websocket_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


def _request_and_key_check(dependant: Dependant) -> tuple[str, str, KeyCheck] | None:
    """Return the endpoint's request and client parameters and its key check, if that is all.

    ``None`` for any other shape, which FastAPI's own handler then answers.
    """
    if len(dependant.dependencies) != 1 or not _takes_the_request_only(dependant):
        return None
    (check,) = dependant.dependencies
    if (
        not isinstance(check.call, KeyCheck)
        or check.name is None
        or check.dependencies
        or getattr(check, "concurrency", None) is not None
        or not _takes_the_request_only(check)
        or not inspect.iscoroutinefunction(dependant.call)
    ):
        return None
    assert dependant.request_param_name is not None  # checked by _takes_the_request_only
    return dependant.request_param_name, check.name, check.call


@dataclass(frozen=True)
class BatchBody:
    """The body of a batch route: its model, and its OpenAPI ``requestBody`` and schemas.

    The routes validate their raw body themselves (:func:`serving.scoring.parse_body`),
    so the OpenAPI document describes it separately.
    """

    model: type[BaseModel]
    openapi: dict[str, Any]
    schemas: dict[str, Any]

    @classmethod
    def for_limit(cls, max_batch: int) -> "BatchBody":
        """Return the batch body that accepts at most ``max_batch`` assessments."""
        model = assessment_batch_model(max_batch)
        openapi, schemas = openapi_request_body(model)
        return cls(model, openapi, schemas)


def batch_route(
    router: APIRouter,
    body: BatchBody,
    path: str,
    response_model: type[BaseModel],
    summary: str,
) -> Callable[[Endpoint], Endpoint]:
    """Return the decorator that declares a batch route on ``router`` (POST ``path``).

    Every batch route may answer the batch errors, and documents the body it
    validates itself.
    """
    return router.post(
        path,
        response_model=response_model,
        responses=BATCH_ERROR_RESPONSES,
        summary=summary,
        openapi_extra=body.openapi,
    )


def record_route(
    router: APIRouter,
    path: str,
    response_model: type[BaseModel],
    responses: dict[int | str, dict[str, Any]],
    summary: str,
) -> Callable[[Endpoint], Endpoint]:
    """Return the decorator that declares a route recording an oversight entry (POST ``path``).

    Such a route answers 201 Created: what it records is a new row, never a
    change to one.
    """
    return router.post(
        path, status_code=201, response_model=response_model, responses=responses, summary=summary
    )


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_body(request: Request) -> bytes:
    """Return the raw JSON body of a request whose route validates it itself.

    Raises
    ------
    UnsupportedMediaTypeError
        If the body is not declared as JSON.
    """
    if not _is_json(request.headers.get("content-type")):
        raise UnsupportedMediaTypeError("send the body as JSON ('Content-Type: application/json')")
    return await request.body()


async def answer(
    request: Request,
    build: Callable[..., tuple[Answer, AuditEntry]],
    body: BatchBody,
    model: LoadedModel | LoadedPathwayModel,
    client: Client,
) -> tuple[Response, list[str]]:
    """Read the body, then validate, answer and audit it in the scoring worker.

    Those steps block (the audit commit above all); the worker's thread keeps the
    event loop free, and the answer comes back once its rows are committed. A small
    dedicated worker, not Starlette's 40-thread pool: under a burst, forty threads
    taking turns at the GIL cost more than the scoring itself.
    """
    raw = await read_body(request)
    content, labels = await in_worker(request, build, raw, body.model, model, client)
    return Response(content=content, media_type="application/json"), labels


async def in_worker(request: Request, step: Callable[..., tuple[T, AuditEntry]], *args: Any) -> T:
    """Return ``step(*args, request_id)``'s answer, run in the scoring worker, once it is audited.

    The worker commits the step's audit entry (with those of other requests
    waiting) before the answer is released: nothing leaves unaudited.
    """
    worker: ScoringWorker = request.app.state.scoring
    return await worker.submit(functools.partial(step, *args, request.state.request_id))
