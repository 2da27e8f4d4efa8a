"""Guards of the scoring service: where it listens, who calls it, what it deserialises.

- :func:`check_listen_address`: off loopback, the service refuses to start
  unless at least one API key exists: a keyless service on a network is a
  misconfiguration (no case system could call it) that must fail loudly.
- :func:`install_cors`: no CORS headers at all unless origins are configured,
  so browsers refuse cross-origin calls by default.
- :class:`OperationsGuardMiddleware`: the API documents and the metrics need a
  valid key (any scope) or a caller in ``DESIST_OPERATIONS_ADDRESSES``, unless
  configured open (``DESIST_DOCS_ACCESS``, ``DESIST_METRICS_ACCESS``).
- :mod:`models.contract.artifact` (shared with batch scoring): run after
  the digest check and before any deserialisation; only the skops format
  holding no type but those desist builds, and no bundled code, is ever
  loaded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from data.errors import DesistError
from serving.errors import UnsafeConfigurationError
from serving.keys import KeyStore
from serving.schemas import ErrorBody
from serving.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The documents of the API (FastAPI's default paths).
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
METRICS_PATHS = frozenset({"/metrics"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_listen_address(host: str, active_keys: int) -> None:
    """Refuse to listen beyond loopback while no API key exists.

    Raises
    ------
    UnsafeConfigurationError
        If ``host`` is not a loopback address and ``active_keys`` is 0.
    """
    if not is_loopback(host) and active_keys == 0:
        raise UnsafeConfigurationError(
            f"refusing to listen on {host}: no API key is configured. Create one first "
            "(desist keys create --client NAME --scope score), or listen on 127.0.0.1."
        )


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Allow the configured browser origins to call the API; do nothing when none are set."""
    if not settings.cors_origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["X-Request-ID", "Retry-After"],
        allow_credentials=False,
    )


class OperationsGuardMiddleware:
    """Admit callers of the docs and the metrics by key or address (see the module notes).

    Unverified keys here meet the per-address rate limit like everywhere else
    (:mod:`serving.ratelimit` limits these paths when guarded): each costs a slow hash.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        guarded: set[str] = set()
        if settings.docs_access == "key":
            guarded |= DOCS_PATHS
        if settings.metrics_access == "key":
            guarded |= METRICS_PATHS
        self.guarded = frozenset(guarded)
        self.networks = [
            ipaddress.ip_network(n, strict=False) for n in settings.operations_addresses
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http" or scope["path"] not in self.guarded:
            await self.app(scope, receive, send)
            return
        if self._listed(scope) or await self._keyed(scope):
            await self.app(scope, receive, send)
            return
        body = ErrorBody(
            error="unauthenticated",
            detail="this page needs an API key: send 'Authorization: Bearer <key>'",
            request_id=scope.get("state", {}).get("request_id"),
        )
        response = JSONResponse(
            body.to_content(), status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)

    def _listed(self, scope: Scope) -> bool:
        address = (scope.get("client") or ("", 0))[0]
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    async def _keyed(self, scope: Scope) -> bool:
        token = bearer_token(scope)
        keys: KeyStore | None = getattr(scope["app"].state, "keys", None)
        if token is None or keys is None:
            return False
        if keys.cached(token) is not None:
            return True
        try:
            await run_in_threadpool(keys.verify, token)
        except DesistError:
            return False
        return True


def bearer_token(scope: Scope) -> str | None:
    """Return the bearer token of a request's ``Authorization`` header, if any."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None
