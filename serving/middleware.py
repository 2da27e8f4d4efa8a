"""Request context: an id per request, caps on its headers and body, one log line and metrics.

A client that goes away before its answer (mid-upload, or while it is being
scored) is logged and counted with status 499 ``client_closed``, not as a
server error; a body whose parts stop arriving for ``body_timeout`` seconds is
answered 408 ``request_timeout``.
"""

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from serving.logs import get_logger, log_info
from serving.metrics import Metrics
from serving.schemas import ErrorBody

request_log = get_logger("serving.requests")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Status logged and counted for a request whose client left before its answer (nginx's).
CLIENT_CLOSED = 499


#: Request ids drawn from the system's random source this many at a time.
_ID_BATCH = 256


def _request_ids() -> Iterator[str]:
    """Yield request ids: random (version 4) UUIDs in hex, as ``uuid.uuid4().hex``.

    The same bits ``uuid4`` sets on the same kind of random bytes, taken from one
    ``os.urandom`` call per 256 ids: ``uuid4`` makes a system call per request on
    the event loop (releasing the GIL to the scoring thread) and builds a ``UUID``.
    Used by the event loop's thread only.
    """
    clear = ~((0xC000 << 48) | (0xF000 << 64))
    version = (0x8000 << 48) | (4 << 76)  # the RFC 4122 variant, version 4
    while True:
        block = os.urandom(16 * _ID_BATCH)
        for start in range(0, len(block), 16):
            value = int.from_bytes(block[start : start + 16], "big") & clear | version
            yield f"{value:032x}"


_REQUEST_IDS = _request_ids()


class _BodyTimeoutError(Exception):
    """The next part of a request body did not arrive in time."""


@dataclass(frozen=True, slots=True)
class RequestContextMiddleware:
    """Give each request an id, cap its body, and log and count it when done.

    A plain ASGI middleware (not ``BaseHTTPMiddleware``), as it runs on every
    request and must stay cheap. Starlette builds it as ``cls(app, **options)``.
    """

    app: ASGIApp
    max_body_bytes: int
    metrics: Metrics
    max_header_bytes: int = 16_384
    body_timeout: float = 10.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = next(_REQUEST_IDS)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        limit = self.max_body_bytes
        started_response = False
        disconnected = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        received = 0
        body_done = False

        async def capped_receive() -> Message:
            nonlocal received, disconnected, body_done
            if body_done:  # later reads only wait for a disconnect: no deadline on those
                message = await receive()
            else:
                try:
                    async with asyncio.timeout(self.body_timeout):
                        message = await receive()
                except TimeoutError as err:
                    raise _BodyTimeoutError from err
            if message["type"] == "http.disconnect":
                disconnected = True
            elif message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, f"request body over {limit} bytes")
            return message

        try:
            declared = _content_length(scope)
            header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
            refusal: tuple[int, str, str] | None = None
            if header_bytes > self.max_header_bytes:
                refusal = (
                    431,
                    "headers_too_large",
                    f"request headers over {self.max_header_bytes} bytes",
                )
            elif declared is not None and declared > limit:
                refusal = (
                    413,
                    "payload_too_large",
                    f"request body of {declared} bytes; at most {limit} are accepted",
                )
            if refusal is not None:
                await _refuse(refusal, request_id, scope, receive, send_with_id)
            else:
                await self.app(scope, capped_receive, send_with_id)
        except ClientDisconnect:
            status = CLIENT_CLOSED  # the client left mid-upload: nobody to answer
        except _BodyTimeoutError:
            if started_response:
                raise
            refusal = (
                408,
                "request_timeout",
                f"the request body stopped arriving for {self.body_timeout:g} s",
            )
            await _refuse(refusal, request_id, scope, receive, send_with_id)
        except asyncio.CancelledError:
            if disconnected or not started_response:
                status = CLIENT_CLOSED
            raise
        finally:
            if disconnected and not started_response:
                status = CLIENT_CLOSED
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], path, status, elapsed)
            log_info(
                request_log,
                "request",
                {
                    "request_id": request_id,
                    "client": state.get("client"),
                    "method": scope["method"],
                    "route": path,
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 3),
                },
            )


async def _refuse(
    refusal: tuple[int, str, str], request_id: str, scope: Scope, receive: Receive, send: Send
) -> None:
    status, error, detail = refusal
    body = ErrorBody(error=error, detail=detail, request_id=request_id)
    response = JSONResponse(body.to_content(), status_code=status, headers={"Connection": "close"})
    await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
