"""Structured logs: one JSON object per line, on standard error.

Request lines carry the request id, the client's name (never its key), the
route, the status and the latency; never the contents of an assessment.

An error's log line names the exception types and where they were raised
(file, line, function), but quotes the message only of the service's own
errors and of database and network errors: other messages (a pydantic
validation error, a ``KeyError``) may quote the assessment being scored.
uvicorn's own loggers go through the same formatter.

Lines are formatted where they are logged and written by a background
thread (:class:`BackgroundHandler`): the request log is written from the
event loop, and a ``write`` to a file can block for milliseconds while the
file system commits its journal, holding every request meanwhile.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from data.errors import DesistError

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


#: Exceptions whose messages are safe to log: ours, and the database's (parameters hidden).
_QUOTABLE = (DesistError, SQLAlchemyError, OSError)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

#: ``json.dumps(entry, default=str)``, but one encoder for every line: ``dumps`` builds a new
#: one whenever it is given options. Non-ASCII characters stay escaped (``ensure_ascii``):
#: standard error may not be UTF-8.
_ENCODE = json.JSONEncoder(default=str).encode

#: The last whole second formatted, and its text: a second's lines share it.
_second: tuple[int, str] = (-1, "")


def iso_milliseconds(created: float) -> str:
    """Return a POSIX time as UTC ISO 8601 text to the millisecond (``...T01:02:03.456+00:00``).

    The text of ``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``
    (the same rounding to the microsecond, half to even, then truncation), at a third of
    its cost: the date and time up to the second are formatted once per second.
    """
    global _second
    fraction, whole = math.modf(created)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        whole += 1.0
        micro -= 1_000_000
    elif micro < 0:  # before 1970
        whole -= 1.0
        micro += 1_000_000
    second = int(whole)
    cached = _second  # one read: another thread may replace it meanwhile
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        _second = cached
    return f"{cached[1]}.{micro // 1000:03d}+00:00"


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
            "time": iso_milliseconds(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key[:1] != "_":
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODE(entry)

    def formatException(self, ei: ExcInfo) -> str:  # noqa: N802 (logging's name)
        """Return the exception as types, frames and safe messages (see the module notes)."""
        return describe_exception(ei[1]) if ei[1] is not None else ""


class BackgroundHandler(logging.Handler):
    """Format each record at once; write the lines from a background thread.

    Lines are written in order, every ``interval`` seconds, and at once
    after a warning or an error; a process killed with SIGKILL loses at most
    the last ``interval`` of info lines. Flushed at normal exit.

    Parameters
    ----------
    stream
        Where the lines go (standard error for the service).
    interval
        Seconds between writes.
    """

    def __init__(self, stream: TextIO, interval: float = 0.05) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self._pending: list[str] = []
        self._queued = threading.Lock()  # guards _pending; held only to append or swap
        self._writing = threading.Lock()  # one writer at a time, so lines stay in order
        self._urgent = threading.Event()
        threading.Thread(target=self._run, name="desist-log-writer", daemon=True).start()
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record's line (``handle`` holds the handler's lock)."""
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        with self._queued:
            self._pending.append(line)
        if record.levelno >= logging.WARNING:
            self._urgent.set()

    def flush(self) -> None:
        """Write every line queued so far."""
        # Never the handler's own lock here: logging.shutdown holds it while calling flush.
        with self._writing:
            with self._queued:
                lines, self._pending = self._pending, []
            if lines:
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except (OSError, ValueError):
                    pass  # standard error gone (closed pipe): nothing left to tell

    def _run(self) -> None:
        while True:
            self._urgent.wait(self.interval)
            self._urgent.clear()
            self.flush()


def log_info(logger: logging.Logger, message: str, extra: Mapping[str, object]) -> None:
    """Log ``message`` at INFO with ``extra``: ``logger.info(message, extra=extra)`` but cheaper.

    For the line logged on every request. The same record through the same
    handlers and filters, but for where it says it was logged: the calling
    function's file, name and first line, not the line of the call. Looking that
    line up (``Logger.findCaller``) decodes the calling function's line table on
    every call, a long one for the request middleware's; no desist formatter
    prints it.
    """
    if logger.isEnabledFor(logging.INFO):
        code = sys._getframe(1).f_code
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            code.co_filename,
            code.co_firstlineno,
            message,
            (),
            None,
            code.co_name,
            extra,
        )
        logger.handle(record)


def get_logger(name: str) -> logging.Logger:
    """Return the service logger ``name`` under desist's root logger (``serving.requests`` ...).

    Every desist logger hangs below one root, which :func:`configure_logging` sends to JSON.
    """
    return logging.getLogger(ROOT_LOGGER).getChild(name)


#: The logger every desist logger hangs below.
ROOT_LOGGER = "desist"


def configure_logging(level: int = logging.INFO) -> None:
    """Send the service's logs (``desist.*``) and uvicorn's to standard error as JSON lines.

    uvicorn logs an exception that escapes the app with its traceback and
    message; through this formatter the message is withheld too.
    """
    handler = BackgroundHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ROOT_LOGGER)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        server_logger = logging.getLogger(name)
        server_logger.handlers[:] = [handler] if name == "uvicorn" else []
        server_logger.propagate = name != "uvicorn"
