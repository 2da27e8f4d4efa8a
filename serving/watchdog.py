"""A deadline on every use of a PostgreSQL connection: past it, the connection is cut.

libpq and psycopg wait for the server without limit once a statement or a
commit is sent. A connection that is alive but silent (the server or a proxy
frozen, a network dropping packets without a reset) then held a request for
as long as the silence lasted (15 s in the red-team run). The server's own
``statement_timeout`` cannot help: its answer is what does not arrive.

:class:`ConnectionWatchdog` arms a deadline when the pool hands a connection
out and disarms it when the connection comes back. One thread checks the
deadlines every 50 ms and shuts down the socket of a connection that overran:
the blocked call then fails at once with a disconnect error, SQLAlchemy drops
the connection, and the next checkout opens a fresh one. The commit that was
cut is not known to have failed: see :class:`serving.errors.AuditOutcomeUnknownError`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from serving.logs import get_logger

log = get_logger("serving.database")


class ConnectionWatchdog:
    """Cut connections held longer than ``seconds`` (see the module notes).

    Parameters
    ----------
    seconds
        Longest a connection may stay checked out: the ping, the statements
        and the commit of one transaction.
    tick
        How often the deadlines are checked.
    """

    def __init__(self, seconds: float, tick: float = 0.05) -> None:
        self.seconds = seconds
        self.tick = tick
        self.cuts = 0
        self._armed: dict[int, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def arm(self, record: object, dbapi_connection: Any) -> None:
        """Start the deadline of a connection just checked out (keyed by its pool record)."""
        fd = _socket_of(dbapi_connection)
        if fd is None:
            return
        with self._lock:
            self._armed[id(record)] = (time.monotonic() + self.seconds, fd)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="desist-db-watchdog", daemon=True
                )
                self._thread.start()

    def disarm(self, record: object) -> None:
        """Stop the deadline of a connection given back (or dropped)."""
        with self._lock:
            self._armed.pop(id(record), None)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self._lock:
                late = [(key, fd) for key, (due, fd) in self._armed.items() if due <= now]
                for key, fd in late:
                    del self._armed[key]
                    _cut(fd)
                    self.cuts += 1
            for _ in late:
                log.warning(
                    "audit database connection cut: no answer within its deadline",
                    extra={"deadline_s": self.seconds},
                )


def _socket_of(dbapi_connection: Any) -> int | None:
    """Return the socket descriptor of a psycopg connection, or None for other drivers."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    try:
        return int(pgconn.socket) if pgconn is not None else None
    except Exception:  # a closed connection has no socket
        return None


def _cut(fd: int) -> None:
    """Shut the socket down (both ways): a thread blocked on it wakes with an error.

    ``shutdown`` acts on the socket, not on the descriptor, so a duplicate
    reaches it; the duplicate is closed, the connection's own descriptor is not.
    """
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed
