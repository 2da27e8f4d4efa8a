"""Structured logs: one JSON object per line, on standard error.

Request lines carry the request id, the client's name (never its key), the
route, the status and the latency; never the contents of an assessment.

An error's log line names the exception types and where they were raised
(file, line, function), but quotes the message only of the service's own
errors and of database and network errors: other messages (a pydantic
validation error, a ``KeyError``) may quote the assessment being scored.
uvicorn's own loggers go through the same formatter.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError

from data.errors import DesistError

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


#: Exceptions whose messages are safe to log: ours, and the database's (parameters hidden).
_QUOTABLE = (DesistError, SQLAlchemyError, OSError)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def describe_exception(error: BaseException) -> str:
    """Return the chain of ``error`` as types and frames, with only safe messages."""
    lines: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__qualname__
        message = str(current) if isinstance(current, _QUOTABLE) else "(message withheld)"
        lines.append(f"{name}: {message}")
        lines += [
            f"  at {frame.filename}:{frame.lineno} in {frame.name}"
            for frame in traceback.extract_tb(current.__traceback__)
        ]
        current = current.__cause__ or current.__context__
        if current is not None:
            lines.append("caused by")
    return "\n".join(lines)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line with its ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON object on one line."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)

    def formatException(self, ei: ExcInfo) -> str:  # noqa: N802 (logging's name)
        """Return the exception as types, frames and safe messages (see the module notes)."""
        return describe_exception(ei[1]) if ei[1] is not None else ""


def configure_logging(level: int = logging.INFO) -> None:
    """Send the service's logs (``desist.*``) and uvicorn's to standard error as JSON lines.

    uvicorn logs an exception that escapes the app with its traceback and
    message; through this formatter the message is withheld too.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("desist")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        server_logger = logging.getLogger(name)
        server_logger.handlers[:] = [handler] if name == "uvicorn" else []
        server_logger.propagate = name != "uvicorn"
