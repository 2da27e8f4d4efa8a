"""Domain exceptions of desist: the base class, and the errors of data (schema, files, adapters).

Every layer raises its errors (chained with ``raise ... from err`` where they
wrap a lower-level error); all derive from :class:`DesistError`. The errors of
fetching and registering models are in :mod:`models.contract.errors`, those of
the tracking store in :mod:`pipeline.tracking`, the serving layer's own (HTTP,
API keys, audit log, service database) in :mod:`serving.errors`. The CLI prints
them and the scoring service maps them to HTTP status codes in a single handler.
"""

from __future__ import annotations

from dataclasses import dataclass


class DesistError(Exception):
    """Base class of every error desist raises on purpose."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason a dataset or request breaks the schema.

    ``row`` counts data rows from 1 (the first row after a CSV header), or is
    ``None`` for a problem with a whole column or the whole dataset.
    """

    column: str
    row: int | None
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "all rows"
        return f"{self.column}, {where}: {self.reason}"


@dataclass(frozen=True, slots=True, eq=False)
class SourceValueProblem:
    """Values of one source column that an adapter could not read or map, row by row.

    Collected instead of raised when a file is scored in batches, so that only
    the rows concerned are rejected (see :meth:`data.adapters.SourceAdapter.apply`).

    Attributes
    ----------
    column
        The source column.
    field
        The canonical field the value was to make.
    positions
        0-based positions of the rows concerned in the adapted frame.
    reasons
        One reason per position, naming the value.
    """

    column: str
    field: str
    positions: tuple[int, ...]
    reasons: tuple[str, ...]


class SchemaValidationError(DesistError):
    """A dataset failed validation; holds every violation found."""

    #: How many violations the message lists before summarising the rest.
    shown = 20

    def __init__(self, violations: list[Violation], source: str = "dataset") -> None:
        self.violations = violations
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [f"{self.source} failed validation with {len(self.violations)} violation(s):"]
        lines += [f"  - {v}" for v in self.violations[: self.shown]]
        hidden = len(self.violations) - self.shown
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")
        return "\n".join(lines)


class FieldError(DesistError):
    """A config names a field it may not use; ``name`` is that field."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


class UnknownFieldError(FieldError):
    """A config names a field that is not in the schema."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"{name!r} is not a field of the assessment schema")


class ForbiddenFeatureError(FieldError):
    """A config asks for a field that must never be a model feature."""

    def __init__(self, name: str, role: str) -> None:
        self.role = role
        super().__init__(name, f"{name!r} ({role}) may not be used as a model feature")


class DatasetFormatError(DesistError):
    """A data file cannot be read: unknown extension, unreadable content."""


class SourceAdapterError(DesistError):
    """A source's adapter config is invalid, or cannot map a source's columns.

    ``column`` names the source column (or adapter key) at fault, ``rows`` the
    first 1-based data rows concerned, if any.
    """

    def __init__(self, column: str, reason: str, rows: tuple[int, ...] = ()) -> None:
        self.column = column
        self.reason = reason
        self.rows = rows
        where = f" (rows {', '.join(map(str, rows))})" if rows else ""
        super().__init__(f"{column}: {reason}{where}")


class LeakageError(FieldError):
    """A config asks for a feature that leaks the outcome or is audit-only."""

    def __init__(self, name: str, reason: str) -> None:
        self.reason = reason
        super().__init__(name, f"{name!r} may not be a feature: {reason}")
