"""The one mapping from errors to HTTP answers, and the OpenAPI description of those answers.

Every error becomes a status code and an :class:`~serving.schemas.ErrorBody`,
never a 200. :data:`STATUS` says which status and code each domain error
gets; anything else is a 500 without details. A client reads the message of
a mapped error (written for it by whoever raised it), never the text of an
unexpected exception, which may quote inputs, paths or credentials.
"""

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from data.errors import DesistError
from data.schema import FIELDS_BY_NAME, PROGRAMMES
from models.contract.errors import ModelLoadError, ModelUnavailableError
from serving.errors import (
    AuditOutcomeUnknownError,
    AuditWriteError,
    AuthenticationError,
    DatabaseUnavailableError,
    InvalidRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RequestDeadlineError,
    UnknownScoreError,
    UnsupportedMediaTypeError,
)
from serving.logs import get_logger
from serving.metrics import Metrics
from serving.model_cards import ModelCardNotFoundError
from serving.schemas import BATCH_TOO_LARGE, ErrorBody, Violation

log = get_logger("serving")

#: HTTP status and error code of each domain error; anything else is a 500 without details.
STATUS: dict[type[DesistError], tuple[int, str]] = {
    AuthenticationError: (401, "unauthenticated"),
    PermissionDeniedError: (403, "forbidden"),
    UnknownScoreError: (404, "score_not_found"),
    ModelCardNotFoundError: (404, "not_found"),
    PayloadTooLargeError: (413, "payload_too_large"),
    UnsupportedMediaTypeError: (415, "unsupported_media_type"),
    ModelUnavailableError: (503, "model_unavailable"),
    ModelLoadError: (503, "model_load_failed"),
    AuditOutcomeUnknownError: (503, "audit_outcome_unknown"),
    AuditWriteError: (503, "audit_unavailable"),
    RequestDeadlineError: (503, "deadline_exceeded"),
    DatabaseUnavailableError: (503, "database_unavailable"),
}

#: Error code of each status a framework error (Starlette's ``HTTPException``) carries.
HTTP_STATUS_CODES: dict[int, str] = {
    400: "malformed_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}

#: The error answers every authenticated route documents.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not text the service can read."},
    401: {"model": ErrorBody, "description": "No valid API key."},
    403: {"model": ErrorBody, "description": "The key's scope does not allow this."},
    429: {"model": ErrorBody, "description": "Too many requests: wait Retry-After seconds."},
    503: {
        "model": ErrorBody,
        "description": "No model loaded, the audit log unavailable (or its commit's outcome "
        "unknown), or the request over its deadline: retry after Retry-After seconds.",
    },
}

#: The error answers of the routes that take a batch of assessments.
BATCH_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    413: {"model": ErrorBody, "description": "Batch or body too large."},
    415: {"model": ErrorBody, "description": "The body is not declared as JSON."},
    422: {"model": ErrorBody, "description": "Invalid assessments: see violations."},
}


def request_id_of(request: Request) -> str | None:
    """Return the id :class:`~serving.middleware.RequestContextMiddleware` gave ``request``."""
    return getattr(request.state, "request_id", None)


def error_response(
    request: Request,
    status: int,
    error: str,
    detail: str,
    violations: list[Violation] | None = None,
    headers: Mapping[str, str] | None = None,
    total: int | None = None,
) -> JSONResponse:
    """Return the :class:`ErrorBody` answer of a failed request."""
    body = ErrorBody(
        error=error,
        detail=detail,
        request_id=request_id_of(request),
        violations=violations,
        violation_count=total,
    )
    return JSONResponse(body.to_content(), status_code=status, headers=headers)


def client_message(exc: DesistError) -> str:
    """Return the message a mapped domain error was raised with, which is written for the client.

    Only for the error types in :data:`STATUS`; their raisers word (and, for model loads,
    redact) the message for the caller.
    """
    return " ".join(str(part) for part in exc.args)


#: Why an allocation's places name an unknown programme (``places.<name>``).
_UNKNOWN_PROGRAMME = "unknown programme: places are given per programme, one of " + ", ".join(
    PROGRAMMES
)

#: Pydantic's error types for a number outside its field's range.
_RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal"})


def _schema_reason(field: str, kind: str, value: Any, default: str) -> str:
    """Word a range or category error as batch rejects do: the value sent and what is allowed."""
    spec = FIELDS_BY_NAME[field]
    if kind in _RANGE_ERRORS and isinstance(value, int | float) and not isinstance(value, bool):
        return spec.out_of_range_reason(value)
    if kind == "literal_error":
        return spec.unknown_category_reason(value)
    return default


def _violation(error: Any) -> Violation:
    loc = [part for part in error["loc"] if part != "body"]
    index = None
    if len(loc) >= 2 and loc[0] in ("assessments", "outcomes") and isinstance(loc[1], int):
        index = loc[1]
        loc = loc[2:]
    kind = error["type"]
    field = ".".join(str(part) for part in loc) or None
    reason = error["msg"]
    if kind == "cross_field":
        field = error["ctx"]["field"]
    elif kind == "extra_forbidden":
        reason = (
            _UNKNOWN_PROGRAMME
            if index is None and loc[:1] == ["places"]
            else "unknown field: not part of the assessment schema"
        )
    elif kind == "missing":
        reason = "required field is missing"
    elif field in FIELDS_BY_NAME and "input" in error:
        reason = _schema_reason(field, kind, error["input"], reason)
    return Violation(assessment_index=index, field=field, reason=reason)


def install_error_handlers(app: FastAPI, metrics: Metrics, max_violations: int = 100) -> None:
    """Map every error to a status code and an :class:`ErrorBody`; never a 200.

    A 422 lists at most ``max_violations`` violations (its detail gives the total):
    1,000 assessments with 150 unknown fields each made a 15 MB answer otherwise.
    """

    async def on_desist_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DesistError)
        status, error = next(
            (code for kind, code in STATUS.items() if isinstance(exc, kind)),
            (500, "internal_error"),
        )
        metrics.count_error(type(exc).__name__)
        if status == 500:
            log.error("unmapped domain error", exc_info=exc)
            return error_response(request, 500, error, "internal error")
        if isinstance(exc, AuditWriteError):
            log.error(
                "audit write failed", exc_info=exc, extra={"request_id": request_id_of(request)}
            )
        headers = (
            {"WWW-Authenticate": "Bearer"}
            if status == 401
            else {"Retry-After": "1"}
            if status == 503
            else None
        )
        return error_response(request, status, error, client_message(exc), headers=headers)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError | InvalidRequestError)
        errors = list(exc.errors())
        too_large = next((e for e in errors if e["type"] == BATCH_TOO_LARGE), None)
        if too_large is not None:
            metrics.count_error("batch_too_large")
            return error_response(request, 413, "payload_too_large", too_large["msg"])
        metrics.count_error("validation")
        total = exc.total if isinstance(exc, InvalidRequestError) else len(errors)
        violations = [_violation(e) for e in errors[:max_violations]]
        detail = f"{total} problem(s) in the request"
        if total > max_violations:
            detail += f"; the first {max_violations} are listed"
        return error_response(
            request, 422, "invalid_request", detail, violations=violations, total=total
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = HTTP_STATUS_CODES.get(exc.status_code, "http_error")
        return error_response(request, exc.status_code, error, str(exc.detail), headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        metrics.count_error(type(exc).__name__)
        log.error("unexpected error", exc_info=exc, extra={"request_id": request_id_of(request)})
        # Never the exception text: it may quote inputs, paths or credentials.
        return error_response(
            request, 500, "internal_error", "internal error; quote the request id to the operator"
        )

    app.add_exception_handler(InvalidRequestError, on_validation_error)
    app.add_exception_handler(DesistError, on_desist_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
