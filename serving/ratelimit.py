"""Per-client rate limits: a token bucket per client, answered with 429 and ``Retry-After``.

Two kinds of caller are limited, each with its own buckets:

- a client whose key the service has verified (the key cache knows it):
  ``rate_limit_per_second`` on average, ``rate_limit_burst`` at once, per
  client name (all its keys share one bucket);
- any other request to the API (no key, a wrong key, a key not yet checked):
  ``unverified_per_second`` per source address. Checking a key costs a slow
  hash, so this bucket is what stops key guessing from using up the CPU.

The limits run before authentication and cost a dictionary look-up and an
HMAC, on the event loop. Each worker process keeps its own buckets, so with
``--workers N`` a client may get up to N times the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from serving.keys import KeyStore
from serving.schemas import ErrorBody
from serving.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths under these prefixes are limited; health and readiness are not, nor the docs and
#: the metrics while they are open (guarded, they take keys, and are limited like the API).
LIMITED_PREFIXES = ("/v1/", "/admin/")


class TokenBuckets:
    """Token buckets by identity: ``rate`` tokens a second, at most ``burst`` saved up.

    Used from the event loop only, so without a lock. Buckets that have
    refilled completely are forgotten when more than ``max_entries`` exist,
    which bounds memory under a flood of distinct identities.

    Parameters
    ----------
    rate
        Tokens added per second (the sustained request rate allowed).
    burst
        Bucket size: requests allowed at once after a quiet spell.
    max_entries
        Identities kept before full buckets are pruned.
    """

    def __init__(self, rate: float, burst: float, max_entries: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_entries = max_entries
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, identity: str, now: float | None = None) -> float:
        """Spend one token of ``identity``; return 0, or the seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(identity, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[identity] = (tokens - 1, now)
            if len(self._buckets) > self.max_entries:
                self._prune(now)
            return 0.0
        self._buckets[identity] = (tokens, now)
        return (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [
            identity
            for identity, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate >= self.burst
        ]
        for identity in full:
            del self._buckets[identity]


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class RateLimitMiddleware:
    """Answer 429 with ``Retry-After`` to clients over their rate (see the module notes)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        limited: set[str] = set()
        if settings.docs_access == "key":
            limited |= {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
        if settings.metrics_access == "key":
            limited |= {"/metrics"}
        self.limited_paths = frozenset(limited)
        self.clients = (
            TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst)
            if settings.rate_limit_per_second > 0
            else None
        )
        rate = settings.unverified_per_second
        self.unverified = TokenBuckets(rate, max(1.0, 2 * rate)) if rate > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http" or not (
            scope["path"].startswith(LIMITED_PREFIXES) or scope["path"] in self.limited_paths
        ):
            await self.app(scope, receive, send)
            return
        wait = self._wait(scope)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        seconds = max(1, math.ceil(wait))
        body = ErrorBody(
            error="rate_limited",
            detail=f"too many requests; retry after {seconds} s",
            request_id=scope.get("state", {}).get("request_id"),
        )
        response = JSONResponse(
            body.model_dump(exclude_none=True),
            status_code=429,
            headers={"Retry-After": str(seconds)},
        )
        await response(scope, receive, send)

    def _wait(self, scope: Scope) -> float:
        token = _bearer(scope)
        keys: KeyStore | None = getattr(scope["app"].state, "keys", None)
        # A key verified before counts as its client even once its cache entry expired: the
        # re-check is on its way, and the client must not meet the guessers' limit meanwhile.
        client = keys.known(token) if token is not None and keys is not None else None
        if client is not None:
            return 0.0 if self.clients is None else self.clients.take(f"client:{client.name}")
        if self.unverified is None:
            return 0.0
        address = scope.get("client") or ("unknown", 0)
        return self.unverified.take(f"address:{address[0]}")
