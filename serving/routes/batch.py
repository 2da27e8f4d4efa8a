"""What the routes share: the batch routes' body and declaration, the raw body, the worker."""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from serving.audit import AuditEntry
from serving.error_handlers import BATCH_ERROR_RESPONSES
from serving.errors import UnsupportedMediaTypeError
from serving.keys import Client
from serving.registry_loader import LoadedModel, LoadedPathwayModel
from serving.schemas import assessment_batch_model, openapi_request_body
from serving.scoring import Answer
from serving.worker import ScoringWorker

T = TypeVar("T")
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


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
