"""Per-client rate limits: token buckets, answered with 429 and ``Retry-After``.

Two kinds of caller are limited, each with its own buckets:

- a client whose key the service has verified (the key cache knows it):
  ``rate_limit_per_second`` on average, ``rate_limit_burst`` at once, per
  client name (all its keys share one bucket);
- any other request to the API (no key, a wrong key, a key not yet checked):
  ``unverified_per_second`` per source address. Checking a key costs a slow
  hash, so this bucket is what stops key guessing from using up the CPU.

Where the buckets live (``DESIST_RATE_LIMIT_BACKEND``):

- ``memory`` (default): each worker process keeps its own
  (:class:`TokenBuckets`), so with ``--workers N`` and R replicas a client may
  get up to N x R times the rate. Nothing else to run.
- ``redis``: one bucket per identity in Redis (``DESIST_REDIS_URL``), shared
  by every worker of every replica (:class:`RedisTokenBuckets`). The bucket is
  a Lua script, run atomically by Redis on its own clock: the same token
  bucket as in memory (a burst, then the rate), so changing backend changes
  no client's allowance. A fixed window (INCR + EXPIRE) would be simpler but
  lets a client spend two windows' worth at a window's edge.

When Redis cannot be reached (or answers too slowly:
``DESIST_REDIS_TIMEOUT_SECONDS``) each worker falls back to its own memory
buckets with the same figures, logs one warning per outage, counts every
request so decided in ``desist_rate_limit_fallbacks_total``, and tries Redis
again after :data:`REDIS_RETRY_SECONDS`. This neither fails open (no limit
at all would leave key guessing unthrottled) nor closed (a 503 for every
case system because a helper cache is away would stop scoring that needs
nothing from it): the limits keep holding, per worker, as they did before
Redis.

The limits run before authentication and cost a dictionary look-up and an
HMAC on the event loop, plus, with Redis, one round trip awaited there.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from fastapi.responses import JSONResponse

from data.errors import DesistError
from serving.keys import KeyStore
from serving.logs import get_logger
from serving.schemas import ErrorBody
from serving.security import ASGIApp, Message, Receive, Scope, Send, bearer_token
from serving.settings import Settings

log = get_logger("serving.ratelimit")

#: Paths under these prefixes are limited; health and readiness are not, nor the docs and
#: the metrics while they are open (guarded, they take keys, and are limited like the API).
LIMITED_PREFIXES = ("/v1/", "/admin/")

#: Seconds a worker keeps to its own buckets after Redis failed, before trying it again:
#: a Redis that is down costs one timeout per worker per interval, not one per request.
REDIS_RETRY_SECONDS = 5.0

#: One token bucket, atomically: KEYS[1] the bucket, ARGV rate and burst. Returns the
#: seconds to wait (as text: Redis turns a Lua number into an integer). Redis's own clock
#: keeps replicas on different hosts consistent; an idle bucket expires once full again.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RateLimitBackendError(DesistError):
    """The shared rate-limit store (Redis) is missing, unreachable or failed."""


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


class RedisTokenBuckets:
    """The same token buckets as :class:`TokenBuckets`, in Redis: shared by every process.

    One client per event loop (a connection belongs to the loop that opened
    it); the script is sent once and then called by its digest.

    Parameters
    ----------
    url
        ``redis://host:port/db`` (``DESIST_REDIS_URL``).
    rate, burst
        As for :class:`TokenBuckets`.
    prefix
        Start of every key this writes (``DESIST_REDIS_PREFIX``): several
        services, or tests, can share one Redis.
    timeout
        Seconds to connect and to answer before the call counts as failed.

    Raises
    ------
    RateLimitBackendError
        If the ``redis`` package is not installed.
    """

    def __init__(self, url: str, rate: float, burst: float, prefix: str, timeout: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        try:
            import redis.asyncio  # noqa: F401  (the team extra; checked when the app is built)
        except ImportError as err:
            raise RateLimitBackendError(
                "DESIST_RATE_LIMIT_BACKEND=redis needs the redis package "
                "(pip install 'desist[team]')"
            ) from err
        self.url = url
        self.rate = rate
        self.burst = burst
        self.prefix = prefix
        self.timeout = timeout
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}

    def _script(self) -> Any:
        import redis.asyncio

        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is None:
            client = redis.asyncio.Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry_on_timeout=False,
            )
            found = self._clients[loop] = (client, client.register_script(TOKEN_BUCKET_LUA))
        return found[1]

    async def take(self, identity: str) -> float:
        """Spend one token of ``identity``; return 0, or the seconds until one is available.

        Raises
        ------
        RateLimitBackendError
            If Redis cannot be reached or fails the call in time.
        """
        import redis

        try:
            waited = await self._script()(
                keys=[self.prefix + identity], args=[repr(self.rate), repr(self.burst)]
            )
            return float(waited)
        except (redis.RedisError, OSError, ValueError) as err:
            raise RateLimitBackendError(
                f"rate limits in Redis failed: {type(err).__name__}: {err}"
            ) from err

    async def close(self) -> None:
        """Close the connections this event loop opened."""
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()


class SharedOrLocalBuckets:
    """Redis buckets while Redis answers, this worker's own buckets while it does not.

    See the module notes for why an outage falls back rather than failing
    open or closed.

    Parameters
    ----------
    shared
        The Redis buckets.
    on_fallback
        Called once for every request decided by the local buckets.
    """

    def __init__(self, shared: RedisTokenBuckets, on_fallback: Callable[[], None]) -> None:
        self.shared = shared
        self.local = TokenBuckets(shared.rate, shared.burst)
        self.on_fallback = on_fallback
        self._retry_at = 0.0
        self._outage = False

    async def take(self, identity: str) -> float:
        """Spend one token of ``identity`` in Redis, or here while Redis is away."""
        now = time.monotonic()
        if now >= self._retry_at:
            try:
                wait = await self.shared.take(identity)
            except RateLimitBackendError as err:
                self._retry_at = now + REDIS_RETRY_SECONDS
                if not self._outage:
                    self._outage = True
                    log.warning(
                        "rate limits fall back to this worker's own buckets",
                        extra={"error": str(err), "retry_seconds": REDIS_RETRY_SECONDS},
                    )
            else:
                if self._outage:
                    self._outage = False
                    log.warning("rate limits are shared in Redis again")
                return wait
        self.on_fallback()
        return self.local.take(identity, now)


class _Buckets(Protocol):
    async def take(self, identity: str) -> float: ...


class _LocalBuckets:
    """:class:`TokenBuckets` behind the awaitable interface the middleware uses."""

    def __init__(self, buckets: TokenBuckets) -> None:
        self.buckets = buckets

    async def take(self, identity: str) -> float:
        return self.buckets.take(identity)


class RateLimitMiddleware:
    """Answer 429 with ``Retry-After`` to clients over their rate (see the module notes).

    Raises
    ------
    RateLimitBackendError
        With the Redis backend, if the ``redis`` package is not installed.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        limited: set[str] = set()
        if settings.docs_access == "key":
            limited |= {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
        if settings.metrics_access == "key":
            limited |= {"/metrics"}
        self.limited_paths = frozenset(limited)
        self._shared: list[RedisTokenBuckets] = []
        self._fallback_counter: Callable[[], None] | None = None
        self.clients = self._buckets(
            settings, settings.rate_limit_per_second, float(settings.rate_limit_burst)
        )
        rate = settings.unverified_per_second
        self.unverified = self._buckets(settings, rate, max(1.0, 2 * rate))

    def _buckets(self, settings: Settings, rate: float, burst: float) -> _Buckets | None:
        if rate <= 0:
            return None
        if settings.rate_limit_backend == "memory":
            return _LocalBuckets(TokenBuckets(rate, burst))
        shared = RedisTokenBuckets(
            settings.redis_url, rate, burst, settings.redis_prefix, settings.redis_timeout_seconds
        )
        self._shared.append(shared)
        return SharedOrLocalBuckets(shared, self._count_fallback)

    def _count_fallback(self) -> None:
        if self._fallback_counter is not None:
            self._fallback_counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_on_shutdown(send))
            return
        if scope["type"] != "http" or not (
            scope["path"].startswith(LIMITED_PREFIXES) or scope["path"] in self.limited_paths
        ):
            await self.app(scope, receive, send)
            return
        wait = await self._wait(scope)
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

    def _closing_on_shutdown(self, send: Send) -> Send:
        """Wrap the lifespan's ``send``: close the Redis connections once the app has stopped."""

        async def closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                for shared in self._shared:
                    await shared.close()
            await send(message)

        return closing

    async def _wait(self, scope: Scope) -> float:
        if self._shared and self._fallback_counter is None:
            metrics = getattr(scope["app"].state, "metrics", None)
            if metrics is not None:
                self._fallback_counter = metrics.count_rate_limit_fallback
        token = bearer_token(scope)
        keys: KeyStore | None = getattr(scope["app"].state, "keys", None)
        # A key verified before counts as its client even once its cache entry expired: the
        # re-check is on its way, and the client must not meet the guessers' limit meanwhile.
        client = keys.known(token) if token is not None and keys is not None else None
        if client is not None:
            return 0.0 if self.clients is None else await self.clients.take(f"client:{client.name}")
        if self.unverified is None:
            return 0.0
        address = scope.get("client") or ("unknown", 0)
        return await self.unverified.take(f"address:{address[0]}")
