"""Errors of the serving layer: HTTP requests, API keys, the audit log, the service database.

Each is a :class:`~data.errors.DesistError`, so the CLI prints it and the
service answers it through its one error-to-HTTP mapping
(:mod:`serving.error_handlers`). Their messages are written for the client
that caused them: they never quote an input, a path or a credential.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from data.errors import DesistError


class AuthenticationError(DesistError):
    """A request carries no API key, or one that is unknown or revoked."""


class PermissionDeniedError(DesistError):
    """A valid API key lacks the scope the operation needs."""


class PayloadTooLargeError(DesistError):
    """A request body or batch is larger than the service accepts."""


class UnsupportedMediaTypeError(DesistError):
    """A request body is not declared as JSON."""


class AuditWriteError(DesistError):
    """Scores could not be recorded in the audit log, so they must not be returned."""


class AuditOutcomeUnknownError(AuditWriteError):
    """The audit commit was sent but its outcome never came back (the database went silent).

    The rows may exist; the answer is withheld all the same, and the request id is
    recorded as unanswered (:data:`serving.database.unanswered_table`), so an export
    marks such rows.
    """


class RequestDeadlineError(DesistError):
    """A request waited or worked longer than its deadline; answered 503 with Retry-After."""


class UnknownScoreError(DesistError):
    """A decision names a score (request id and subject) the service never served."""


class NoScoresServedError(DesistError):
    """A model version served no score in the period asked about (nothing to monitor)."""


class KeyStoreError(DesistError):
    """An API key cannot be created or revoked (bad scope, unknown client or key)."""


class DatabaseUnavailableError(DesistError):
    """The service database (API keys, audit log) cannot be reached just now."""


class UnsafeConfigurationError(DesistError):
    """The service was asked to run in a way that would expose it (e.g. open and keyless)."""


class InvalidRequestError(DesistError):
    """A request body breaks its schema; holds every problem pydantic found.

    Raised by the scoring step (:mod:`serving.scoring`), which knows nothing of
    HTTP; answered like FastAPI's own validation errors (422, or 413 for an
    oversized batch).
    """

    def __init__(self, problems: Sequence[Any], total: int | None = None) -> None:
        self.problems = list(problems)
        #: How many problems were found (``problems`` may list only the first of them).
        self.total = len(self.problems) if total is None else total
        super().__init__(f"{self.total} problem(s) in the request")

    def errors(self) -> list[Any]:
        """Return the problems, shaped as :meth:`pydantic.ValidationError.errors`."""
        return self.problems
