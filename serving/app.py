"""The scoring service: a FastAPI app that scores assessments and audits every score.

Build it with :func:`create_app` (tests, embedding) or let uvicorn call
:func:`create_app_from_env`. Nothing is loaded at import: the database and
the model are opened in the app's lifespan.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route
# signatures at runtime, and the request body type is built per app.

import asyncio
import contextlib
import functools
import gc
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from data.errors import (
    AuditWriteError,
    AuthenticationError,
    DatabaseUnavailableError,
    DesistError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedMediaTypeError,
)
from models.contract.errors import ModelLoadError, ModelUnavailableError
from serving.audit import AuditEntry, AuditLog, AuditRecord, RecommendationRecord, input_digest
from serving.database import checkpoint_wal, is_sqlite, make_engine, prepare_tables
from serving.keys import Client, KeyStore
from serving.logs import configure_logging
from serving.metrics import Metrics
from serving.ratelimit import RateLimitMiddleware
from serving.recommender import audit_summary
from serving.registry_loader import (
    LoadedModel,
    LoadedPathwayModel,
    ModelHolder,
    champion_version,
    load_model,
    load_pathway_model,
)
from serving.schemas import (
    BATCH_TOO_LARGE,
    ErrorBody,
    ModelsResponse,
    PathwayRecommendationResponse,
    ReloadResponse,
    RiskScoreResponse,
    Violation,
    assessment_batch_model,
    openapi_request_body,
)
from serving.security import install_cors
from serving.settings import Settings, get_settings
from serving.worker import ScoringWorker

log = logging.getLogger("desist.serving")
request_log = logging.getLogger("desist.serving.requests")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: HTTP status of each domain error; anything else is a 500 without details.
STATUS: dict[type[DesistError], tuple[int, str]] = {
    AuthenticationError: (401, "unauthenticated"),
    PermissionDeniedError: (403, "forbidden"),
    PayloadTooLargeError: (413, "payload_too_large"),
    UnsupportedMediaTypeError: (415, "unsupported_media_type"),
    ModelUnavailableError: (503, "model_unavailable"),
    ModelLoadError: (503, "model_load_failed"),
    AuditWriteError: (503, "audit_unavailable"),
    DatabaseUnavailableError: (503, "database_unavailable"),
}

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not text the service can read."},
    401: {"model": ErrorBody, "description": "No valid API key."},
    403: {"model": ErrorBody, "description": "The key's scope does not allow this."},
    429: {"model": ErrorBody, "description": "Too many requests: wait Retry-After seconds."},
    503: {"model": ErrorBody, "description": "No model loaded, or the audit log is unavailable."},
}

#: The answers of the routes that take a batch of assessments.
BATCH_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    413: {"model": ErrorBody, "description": "Batch or body too large."},
    415: {"model": ErrorBody, "description": "The body is not declared as JSON."},
    422: {"model": ErrorBody, "description": "Invalid assessments: see violations."},
}


# --- request context: id, body limit, one log line and metrics per request ---


class RequestContextMiddleware:
    """Give each request an id, cap its body, and log and count it when done.

    A plain ASGI middleware (not ``BaseHTTPMiddleware``), as it runs on every
    request and must stay cheap.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        limit = self.max_body_bytes

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, f"request body over {limit} bytes")
            return message

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                body = ErrorBody(
                    error="payload_too_large",
                    detail=f"request body of {declared} bytes; at most {limit} are accepted",
                    request_id=request_id,
                )
                response = JSONResponse(body.to_content(), status_code=413)
                await response(scope, receive, send_with_id)
            else:
                await self.app(scope, capped_receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], path, status, elapsed)
            request_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "client": state.get("client"),
                    "method": scope["method"],
                    "route": path,
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 3),
                },
            )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# --- dependencies ---

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A desist API key: `Authorization: Bearer dsk_...` (`desist keys create`).",
)


async def get_model(request: Request) -> LoadedModel:
    """Return the model to score with; read once, so a reload cannot change it mid-request."""
    holder: ModelHolder[LoadedModel] = request.app.state.holder
    return holder.get()


async def get_pathway_model(request: Request) -> LoadedPathwayModel:
    """Return the pathway model to recommend with; read once per request."""
    holder: ModelHolder[LoadedPathwayModel] = request.app.state.pathway_holder
    return holder.get()


async def get_metrics(request: Request) -> Metrics:
    """Return this process's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_holder(request: Request) -> ModelHolder[LoadedModel]:
    """Return the risk model's holder (for reloads)."""
    holder: ModelHolder[LoadedModel] = request.app.state.holder
    return holder


async def get_pathway_holder(request: Request) -> ModelHolder[LoadedPathwayModel]:
    """Return the pathway model's holder (for reloads)."""
    holder: ModelHolder[LoadedPathwayModel] = request.app.state.pathway_holder
    return holder


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Client:
    """Return the client whose API key the request carries.

    Raises
    ------
    AuthenticationError
        Without a bearer key, or with one that is unknown or revoked.
    """
    if credentials is None:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    keys: KeyStore = request.app.state.keys
    client = keys.cached(credentials.credentials)
    if client is None:
        # scrypt and a database read: off the event loop.
        client = await run_in_threadpool(keys.verify, credentials.credentials)
    request.state.client = client.name
    return client


def require(scope: str) -> Callable[..., Awaitable[Client]]:
    """Return a dependency that admits clients whose key allows ``scope``.

    Authentication and the scope check are one dependency: FastAPI's
    resolution costs tens of microseconds per dependency on every request.
    """

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Client:
        client = await authenticate(request, credentials)
        if not client.may(scope):
            raise PermissionDeniedError(f"this key's scope ({client.scope}) does not allow {scope}")
        return client

    return check


ModelDep = Annotated[LoadedModel, Depends(get_model)]
PathwayModelDep = Annotated[LoadedPathwayModel, Depends(get_pathway_model)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
HolderDep = Annotated[ModelHolder[LoadedModel], Depends(get_holder)]
PathwayHolderDep = Annotated[ModelHolder[LoadedPathwayModel], Depends(get_pathway_holder)]
ClientDep = Annotated[Client, Depends(require("score"))]
AdminDep = Annotated[Client, Depends(require("admin"))]


# --- error handling: one place maps errors to status codes ---


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _error_response(
    request: Request,
    status: int,
    error: str,
    detail: str,
    violations: list[Violation] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(
        error=error, detail=detail, request_id=_request_id(request), violations=violations
    )
    return JSONResponse(body.to_content(), status_code=status, headers=headers)


def _violation(error: Any) -> Violation:
    loc = [part for part in error["loc"] if part != "body"]
    index = None
    if len(loc) >= 2 and loc[0] == "assessments" and isinstance(loc[1], int):
        index = loc[1]
        loc = loc[2:]
    kind = error["type"]
    field = ".".join(str(part) for part in loc) or None
    reason = error["msg"]
    if kind == "cross_field":
        field = error["ctx"]["field"]
    elif kind == "extra_forbidden":
        reason = "unknown field: not part of the assessment schema"
    elif kind == "missing":
        reason = "required field is missing"
    return Violation(assessment_index=index, field=field, reason=reason)


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Map every error to a status code and an :class:`ErrorBody`; never a 200."""

    async def on_desist_error(request: Request, exc: Exception) -> JSONResponse:
        status, error = next(
            (code for kind, code in STATUS.items() if isinstance(exc, kind)),
            (500, "internal_error"),
        )
        metrics.count_error(type(exc).__name__)
        if status == 500:
            log.error("unmapped domain error", exc_info=exc)
            return _error_response(request, 500, error, "internal error")
        if isinstance(exc, AuditWriteError):
            log.error(
                "audit write failed", exc_info=exc, extra={"request_id": _request_id(request)}
            )
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return _error_response(request, status, error, str(exc), headers=headers)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        too_large = next((e for e in errors if e["type"] == BATCH_TOO_LARGE), None)
        if too_large is not None:
            metrics.count_error("batch_too_large")
            return _error_response(request, 413, "payload_too_large", too_large["msg"])
        metrics.count_error("validation")
        violations = [_violation(e) for e in errors]
        return _error_response(
            request,
            422,
            "invalid_request",
            f"{len(violations)} problem(s) in the request",
            violations=violations,
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = {
            400: "malformed_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        return _error_response(
            request, exc.status_code, error, str(exc.detail), headers=exc.headers
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        metrics.count_error(type(exc).__name__)
        log.error("unexpected error", exc_info=exc, extra={"request_id": _request_id(request)})
        # Never the exception text: it may quote inputs, paths or credentials.
        return _error_response(
            request, 500, "internal_error", "internal error; quote the request id to the operator"
        )

    app.add_exception_handler(DesistError, on_desist_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


# --- routes ---


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


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """Validate a raw JSON body against ``model`` in one pass.

    Straight from bytes with pydantic-core's parser: FastAPI's own body
    handling decodes the JSON to Python objects first and validates them
    after, which doubled the cost of a 1,000-assessment batch.

    Raises
    ------
    RequestValidationError
        With every problem found, answered with 422 (or 413 for an oversized batch).
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        raise RequestValidationError(err.errors(include_url=False, include_input=False)) from err


#: An answer's body and its labels for the metrics (bands, or top programmes).
Answer = tuple[bytes, list[str]]


def _score_response(
    raw: bytes,
    request_model: type[BaseModel],
    model: LoadedModel,
    client: Client,
    request_id: str,
) -> tuple[Answer, AuditEntry]:
    """Validate, score and serialise; return the answer with the audit rows it must commit first.

    The scoring worker commits the rows (with those of other requests waiting) before
    the answer is released: nothing leaves unaudited.
    """
    assessments = parse_body(raw, request_model).assessments
    scores = model.scorer.score(assessments)
    entry = AuditEntry(
        "scores",
        client=client.name,
        request_id=request_id,
        model_name=model.name,
        model_version=model.version,
        records=[
            AuditRecord(
                subject_ref=score["subject_ref"],
                input_digest=input_digest(item),
                risk_probability=score["risk_probability"],
                risk_band=score["risk_band"],
            )
            for item, score in zip(assessments, scores, strict=True)
        ],
    )
    # Built from plain values already checked by the scorer: the shape is RiskScoreResponse's.
    content = to_json(
        {
            "model_name": model.name,
            "model_version": model.version,
            "request_id": request_id,
            "scores": scores,
        }
    )
    return (content, [score["risk_band"] for score in scores]), entry


def _recommendation_response(
    raw: bytes,
    request_model: type[BaseModel],
    model: LoadedPathwayModel,
    client: Client,
    request_id: str,
) -> tuple[Answer, AuditEntry]:
    """Validate, recommend and serialise; return the answer with its audit rows (as scores)."""
    assessments = parse_body(raw, request_model).assessments
    answers = model.recommender.recommend(assessments)
    entry = AuditEntry(
        "recommendations",
        client=client.name,
        request_id=request_id,
        model_name=model.name,
        model_version=model.version,
        records=[
            RecommendationRecord(
                subject_ref=answer["subject_ref"],
                input_digest=input_digest(item),
                recommended=audit_summary(answer),
            )
            for item, answer in zip(assessments, answers, strict=True)
        ],
    )
    content = to_json(
        {
            "model_name": model.name,
            "model_version": model.version,
            "request_id": request_id,
            "recommendations": answers,
        }
    )
    tops = [a["recommended"][0]["programme"] if a["recommended"] else "none" for a in answers]
    return (content, tops), entry


def add_routes(app: FastAPI, settings: Settings) -> None:
    """Declare the service's endpoints on ``app``."""
    request_model = assessment_batch_model(settings.max_batch)
    request_body, schemas = openapi_request_body(request_model)
    add_openapi_components(app, schemas)

    async def answer(
        request: Request,
        build: Callable[..., tuple[Answer, AuditEntry]],
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
        worker: ScoringWorker = request.app.state.scoring
        content, labels = await worker.submit(
            functools.partial(build, raw, request_model, model, client, request.state.request_id)
        )
        return Response(content=content, media_type="application/json"), labels

    @app.post(
        "/v1/risk-scores",
        response_model=RiskScoreResponse,
        responses=BATCH_ERRORS,
        tags=["scores"],
        summary="Score a batch of assessments",
        openapi_extra=request_body,
    )
    async def score_assessments(
        request: Request,
        client: ClientDep,  # first: no one learns anything about the model before auth
        model: ModelDep,
    ) -> Response:
        """Return the calibrated re-offending probability, band and reasons of each assessment.

        Every score is written to the audit log before the response is sent.
        """
        response, bands = await answer(request, _score_response, model, client)
        request.app.state.metrics.count_scores(model.version, bands)
        return response

    @app.post(
        "/v1/pathway-recommendations",
        response_model=PathwayRecommendationResponse,
        responses=BATCH_ERRORS,
        tags=["pathways"],
        summary="Recommend rehabilitation pathways for a batch of assessments",
        openapi_extra=request_body,
    )
    async def recommend_pathways(
        request: Request,
        client: ClientDep,
        model: PathwayModelDep,
    ) -> Response:
        """Rank the programmes likely to lower each person's 12-month re-offending risk.

        Each recommended programme comes with its estimated absolute reduction, an
        interval and the needs items behind it; every other programme with the reason
        it is left out (not eligible, outside the evidence, not clearly beneficial).
        Same input, keys and audit as risk scores; the practitioner decides.
        """
        response, tops = await answer(request, _recommendation_response, model, client)
        request.app.state.metrics.count_recommendations(model.version, tops)
        return response

    @app.get("/v1/models", response_model=ModelsResponse, responses=ERRORS, tags=["models"])
    async def list_models(
        client: ClientDep, model: ModelDep, pathways: PathwayHolderDep
    ) -> ModelsResponse:
        """Describe the model versions served: training data and date, metrics, model card."""
        served = [model.describe()]
        if pathways.current is not None:
            served.append(pathways.current.describe())
        return ModelsResponse(models=served)

    @app.post("/admin/reload", response_model=ReloadResponse, responses=ERRORS, tags=["admin"])
    def reload_model(
        holder: HolderDep, pathways: PathwayHolderDep, client: AdminDep
    ) -> ReloadResponse:
        """Load the versions the aliases point at now; on failure the old models keep serving."""
        previous = holder.current
        pathway_status = _reload_pathways(pathways)
        try:
            loaded = holder.reload()
        except ModelLoadError as err:
            still = f"still serving version {previous.version}" if previous else "no model served"
            raise ModelLoadError(f"reload failed ({still}): {err}") from err
        log.info(
            "model reloaded",
            extra={"client": client.name, "version": loaded.version},
        )
        return ReloadResponse(
            status="reloaded",
            previous_version=None if previous is None else previous.version,
            model=loaded.describe(),
            pathway_model=None if pathways.current is None else pathways.current.describe(),
            pathway_status=pathway_status,
        )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Answer while the process is alive."""
        return {"status": "alive"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"model": ErrorBody, "description": "Not ready, with the reason."}},
    )
    async def readyz(holder: HolderDep, pathways: PathwayHolderDep) -> dict[str, str]:
        """Answer 200 once the risk model is loaded; 503 with the reason before that.

        The pathway model is optional: its state is reported, not required.
        """
        model = holder.get()
        pathway = pathways.current
        return {
            "status": "ready",
            "model": model.name,
            "version": model.version,
            "pathway_model": "not loaded" if pathway is None else pathway.version,
        }

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    async def metrics_text(metrics: MetricsDep) -> PlainTextResponse:
        """Return the Prometheus metrics of this process."""
        return PlainTextResponse(
            metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )


# --- the app ---


def add_openapi_components(app: FastAPI, schemas: Mapping[str, Any]) -> None:
    """Add schemas under ``components/schemas`` of the app's OpenAPI document.

    For the bodies that routes validate themselves (:func:`openapi_request_body`).
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()  # cached by FastAPI after the first call
        document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


async def _checkpoint_wal_every(engine: Engine, seconds: float) -> None:
    """Checkpoint the SQLite audit log off the request path (see ``make_engine``)."""
    while True:
        await asyncio.sleep(seconds)
        await run_in_threadpool(checkpoint_wal, engine)


def _reload_pathways(holder: ModelHolder[LoadedPathwayModel]) -> str:
    """Reload the pathway model; say what happened (a failure keeps the old one serving)."""
    previous = holder.current
    try:
        loaded = holder.reload()
    except ModelLoadError:
        kept = f"still serving version {previous.version}" if previous else "none served"
        return f"not reloaded ({kept}): {holder.public_reason}"
    return f"serving version {loaded.version}"


async def _poll_aliases(holders: tuple[ModelHolder[Any], ...], seconds: float) -> None:
    """Reload a model when its alias moves to another version; errors keep the served model."""
    while True:
        await asyncio.sleep(seconds)
        for holder in holders:
            try:
                version = await run_in_threadpool(champion_version, holder.settings, holder.name)
                current = holder.current
                if current is None or current.version != version:
                    await run_in_threadpool(holder.reload)
            except ModelLoadError:
                pass  # already logged and kept for /readyz
            except Exception:
                log.exception("alias poll failed")


def create_app(settings: Settings) -> FastAPI:
    """Return the scoring service app for ``settings``.

    The database and the model are opened when the app starts (its
    lifespan), not here; a model that fails to load leaves the app running
    and ``/readyz`` answering 503 with the reason.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(
            settings.resolved_database_url(),
            connect_timeout=settings.database_connect_timeout,
            create_tables=False,
            background_checkpoints=True,
        )
        # The service starts even while its database is away; scoring answers 503 until it is back.
        tables_retry = await prepare_tables(engine)
        app.state.scoring = ScoringWorker(AuditLog(engine), threads=settings.scoring_threads)
        app.state.keys = KeyStore(engine)
        holder = ModelHolder(settings, load_model, settings.model_name, "risk")
        pathway_holder = ModelHolder(
            settings, load_pathway_model, settings.pathway_model_name, "pathway"
        )
        app.state.holder = holder
        app.state.pathway_holder = pathway_holder
        for each in (holder, pathway_holder):
            with contextlib.suppress(ModelLoadError):
                await run_in_threadpool(each.reload)
        # The model and the libraries are long-lived: moving them out of the
        # garbage collector's view keeps full collections (tens of ms with a
        # loaded model) out of request latency.
        gc.collect()
        gc.freeze()
        # The event loop and the scoring thread share the GIL, and each request hands it
        # over several times (every SQLite call and most numpy ones release it). With
        # CPython's 5 ms switch interval a thread asking for it back could wait 5 ms per
        # hand-over whenever the other was busy: a 0.7 ms request took 3-7 ms, a queue
        # formed and fed itself (bursts of 50-250 ms at 70 % of the peak rate).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
        poller = (
            asyncio.create_task(_poll_aliases((holder, pathway_holder), settings.poll_seconds))
            if settings.poll_seconds > 0
            else None
        )
        checkpoints = (
            asyncio.create_task(_checkpoint_wal_every(engine, 1.0)) if is_sqlite(engine) else None
        )
        try:
            yield
        finally:
            for task in (poller, tables_retry, checkpoints):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            # Requests in flight finish their audit commit before the engine goes.
            await run_in_threadpool(app.state.scoring.close)
            engine.dispose()
            sys.setswitchinterval(switch_interval)

    app = FastAPI(
        title="desist scoring service",
        summary="Calibrated re-offending risk scores with reasons, audited.",
        version="1",
        lifespan=lifespan,
    )
    metrics = Metrics()
    app.state.metrics = metrics
    app.state.settings = settings
    install_error_handlers(app, metrics)
    add_routes(app, settings)
    app.add_middleware(RateLimitMiddleware, settings=settings)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=metrics,
    )
    install_cors(app, settings)
    return app


def create_app_from_env() -> FastAPI:
    """Return the app configured from ``DESIST_*`` variables, with JSON logs (for uvicorn)."""
    configure_logging()
    return create_app(get_settings())
