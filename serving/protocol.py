"""uvicorn's httptools protocol with two limits it lacks: header size and header time.

httptools accepts request headers of any size (a 16 MiB header was read in
full) and waits for them without limit (50 slowloris sockets were held for
30 s). :class:`BoundedHttpToolsProtocol` answers 431 once more than
``DESIST_MAX_HEADER_BYTES`` arrive before the end of the headers, and 408
when the headers are not complete ``DESIST_HEADER_TIMEOUT_SECONDS`` after
the connection opened or the request began; both close the connection.
:mod:`serving.middleware` bounds the body (size and gaps between its parts).

``desist serve`` names this class to uvicorn by import path
(:data:`PROTOCOL`), so it works with several worker processes too; the
limits come from the same ``DESIST_*`` settings as the app.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.logs import get_logger
from serving.settings import get_settings

log = get_logger("serving.requests")

PROTOCOL = "serving.protocol:BoundedHttpToolsProtocol"

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """An httptools connection whose request headers are bounded in size and time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_header_bytes = settings.max_header_bytes
        self.header_timeout = settings.header_timeout_seconds
        self._reading_headers = False  # a request began, its headers are not complete
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock on the first request's headers."""
        super().connection_made(transport)
        self._start_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the header clock with the connection."""
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; refuse the request once its headers pass the size limit."""
        super().data_received(data)
        if self._reading_headers and not self.transport.is_closing():
            # Counted only while the headers are still incomplete after this chunk, so a
            # body arriving with the end of the headers never counts.
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(
                    431,
                    "headers_too_large",
                    f"request headers over {self.max_header_bytes} bytes",
                )

    def on_message_begin(self) -> None:
        """Start a new request on the connection: its headers get their own clock."""
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        if self.cycle is not None:  # a later request on a kept-alive connection
            self._start_clock()

    def on_headers_complete(self) -> None:
        """Headers done: stop their clock (the middleware bounds the body).

        Between requests, uvicorn's keep-alive timeout closes an idle connection.
        The request's answer goes out through :class:`_HeadWithBody`.
        """
        self._reading_headers = False
        self._stop_header_timer()
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before and cycle.scope["method"] != "HEAD":
            # Its task has not started yet: nothing of its answer was written. (A HEAD
            # answer has no body write to carry its head: left as it was.)
            cycle.transport = _HeadWithBody(self.transport)  # type: ignore[assignment]

    def _start_clock(self) -> None:
        self._stop_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._reading_headers and not self.transport.is_closing():
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being answered; its headers were complete
            self._refuse(
                408, "request_timeout", f"request headers not complete in {self.header_timeout:g} s"
            )

    def _refuse(self, status: int, error: str, detail: str) -> None:
        body = json.dumps({"error": error, "detail": detail}).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
            + b"content-type: application/json\r\n"
            + b"content-length: %d\r\n" % len(body)
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()
        self._stop_header_timer()
        log.info(
            "request",
            extra={"status": status, "error": error, "client": None, "route": "unmatched"},
        )


class _HeadWithBody:
    """A connection's transport for one answer that sends its head with its body's first part.

    uvicorn writes an answer's status line and headers, then its body, in two
    writes: two system calls, two segments, and two wake-ups of the client,
    each made while the event loop holds the GIL. The head is held here and
    written with the first part of the body in one call; uvicorn writes a body
    part for every answer but a HEAD one (empty bodies and the last chunk
    included), and those are not given this transport. Anything else (a
    ``100 Continue``, which must not wait) is written at once, and a head still
    held when uvicorn closes the connection (an app that failed after
    starting its answer) is written first, so the bytes on the wire are the same.
    """

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        """Write ``data``, holding an answer's head (not a ``100 Continue``) for its body."""
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data.startswith(b"HTTP/") and not data.startswith(b"HTTP/1.1 100 "):
            self._held = data
            return
        self._transport.write(data)

    def close(self) -> None:
        """Write a head still held, then close the connection."""
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
