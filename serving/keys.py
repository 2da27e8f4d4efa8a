"""API keys: one or more per client, each with a scope; only a salted hash is stored.

A key reads ``dsk_<key id>_<secret>``. The key id (public, 12 hex digits)
finds the stored row; the secret is checked against its scrypt hash with a
per-key salt, in constant time. The key itself is shown once, when created.

scrypt is deliberately slow (tens of milliseconds), so a verified key is
remembered in memory, under a keyed hash of the key (never the key), for
``cache_seconds``: a revocation takes effect in a running service within
that time. A key in use is checked again in the background shortly before
that time runs out, so its requests never wait for scrypt.

A key whose id is unknown or revoked costs the same hash as a wrong secret,
so timing tells a guesser nothing about which key ids exist. When a cached
key expires under load, one thread checks it again while the others with the
same key wait for that answer: not one scrypt per waiting request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from data.schema import FREE_TEXT_PATTERN
from serving.database import api_keys_table
from serving.errors import AuthenticationError, DatabaseUnavailableError, KeyStoreError

Scope = Literal["score", "admin", "outcomes", "allocate"]
#: ``score``: score, recommend and record practitioners' decisions (a case system);
#: ``outcomes``: import outcomes only (a records feed); ``allocate``: allocate a cohort's
#: programme places (``POST /v1/pathway-allocations``: whoever commissions or plans the
#: places, not a case system); ``admin``: everything.
SCOPES: tuple[str, ...] = ("score", "admin", "outcomes", "allocate")
PREFIX = "dsk"

# scrypt cost: 16 MiB and about 60 ms per check on this machine.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
#: Compared against when a key id is unknown, so that the answer takes as long as for a known one.
_DECOY_SALT = bytes(16)
_DECOY_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class Client:
    """An authenticated caller: who it is, and what it may do."""

    name: str
    scope: str
    key_id: str

    def may(self, scope: str) -> bool:
        """Whether this client may do what ``scope`` allows (admin may do everything)."""
        return self.scope == "admin" or self.scope == scope


def _hash(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT).hex()


def _split(key: str) -> tuple[str, str]:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise AuthenticationError("malformed API key")
    return parts[1], parts[2]


class KeyStore:
    """Create, revoke and verify API keys held in the service database.

    Parameters
    ----------
    engine
        The service database (see :func:`serving.database.make_engine`).
    cache_seconds
        How long a verified key is trusted without checking the database again.
    refresh_seconds
        In the last ``refresh_seconds`` of that time, the first request that
        uses the key starts a check in the background and is answered from
        the cache; the check renews the key, or forgets it if it was revoked.
        A key in steady use is then never checked on a request's path (its
        ~50 ms scrypt held every request of the client at each expiry), and a
        revocation still takes effect within ``cache_seconds``.
    """

    def __init__(
        self, engine: Engine, cache_seconds: float = 30.0, refresh_seconds: float = 5.0
    ) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._refresh_seconds = min(refresh_seconds, cache_seconds)
        self._refreshing: set[bytes] = set()
        self._pepper = secrets.token_bytes(32)  # per process: cache keys mean nothing elsewhere
        self._cache: dict[bytes, tuple[Client, float]] = {}
        self._lock = threading.Lock()
        self._checking: dict[bytes, threading.Lock] = {}  # one check per key at a time

    def _fingerprint(self, key: str) -> bytes:
        """Return the cache's name for ``key``: a keyed BLAKE2b hash (a MAC) with the pepper.

        Not ``hmac.digest``: it looks SHA-256 up by name and releases the GIL on every
        call, twice per request on the event loop (the rate limit's look-up and the
        key check); a keyed BLAKE2b of a key's few bytes is one call holding it.
        """
        return hashlib.blake2b(key.encode(), key=self._pepper, digest_size=32).digest()

    def create_key(self, client: str, scope: str) -> tuple[str, str]:
        """Create a key for ``client`` with ``scope``; return ``(key_id, key)``.

        The key is returned once and never stored.

        Raises
        ------
        KeyStoreError
            If the scope is unknown or the client name is empty or too long.
        """
        if scope not in SCOPES:
            raise KeyStoreError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if not client.strip() or len(client) > 128:
            raise KeyStoreError("client name must be 1 to 128 characters")
        if re.fullmatch(FREE_TEXT_PATTERN, client) is None:
            raise KeyStoreError("client name must not contain control characters or line breaks")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        with self._engine.begin() as conn:
            conn.execute(
                api_keys_table.insert().values(
                    key_id=key_id,
                    client=client,
                    scope=scope,
                    salt=salt.hex(),
                    key_hash=_hash(secret, salt),
                    created_at=datetime.now(UTC),
                    revoked_at=None,
                )
            )
        return key_id, f"{PREFIX}_{key_id}_{secret}"

    def revoke(self, *, key_id: str | None = None, client: str | None = None) -> int:
        """Revoke one key by id, or every key of a client; return how many were revoked.

        Raises
        ------
        KeyStoreError
            If neither or both of ``key_id`` and ``client`` are given, or nothing matched.
        """
        if (key_id is None) == (client is None):
            raise KeyStoreError("revoke needs exactly one of a key id or a client")
        condition = (
            api_keys_table.c.key_id == key_id
            if key_id is not None
            else api_keys_table.c.client == client
        )
        with self._engine.begin() as conn:
            result = conn.execute(
                update(api_keys_table)
                .where(condition, api_keys_table.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        if result.rowcount == 0:
            raise KeyStoreError(f"no active key for {key_id or client!r}")
        with self._lock:
            self._cache.clear()
        return int(result.rowcount)

    def active_count(self) -> int:
        """Return how many keys are not revoked."""
        with self._engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(api_keys_table)
                .where(api_keys_table.c.revoked_at.is_(None))
            ).scalar_one()
        return int(count)

    def known(self, key: str) -> Client | None:
        """Return the client a key was last verified as, even if that has expired.

        For rate limiting only (which bucket a request counts against), never
        for authentication: a key that fails a check is forgotten.
        """
        fingerprint = self._fingerprint(key)
        with self._lock:
            found = self._cache.get(fingerprint)
        return None if found is None else found[0]

    def cached(self, key: str) -> Client | None:
        """Return the client of a key verified in the last ``cache_seconds``, else ``None``."""
        fingerprint = self._fingerprint(key)
        now = time.monotonic()
        with self._lock:
            found = self._cache.get(fingerprint)
            if found is None or found[1] <= now:
                return None
            renew = found[1] - now < self._refresh_seconds and fingerprint not in self._refreshing
            if renew:
                self._refreshing.add(fingerprint)
        if renew:
            threading.Thread(
                target=self._refresh,
                args=(key, fingerprint),
                name="desist-key-refresh",
                daemon=True,
            ).start()
        return found[0]

    def _refresh(self, key: str, fingerprint: bytes) -> None:
        """Check a cached key again (background); a revoked key is forgotten by ``verify``."""
        try:
            self.verify(key, force=True)
        except (AuthenticationError, DatabaseUnavailableError):
            pass  # forgotten, or left to expire and be checked on the next request
        finally:
            with self._lock:
                self._refreshing.discard(fingerprint)

    def verify(self, key: str, *, force: bool = False) -> Client:
        """Return the client a key belongs to; ``force`` checks it even while cached.

        Raises
        ------
        AuthenticationError
            If the key is malformed, unknown, revoked or wrong.
        DatabaseUnavailableError
            If the key store cannot be read (the service answers 503, not 401).
        """
        fingerprint = self._fingerprint(key)
        with self._lock:
            checking = self._checking.setdefault(fingerprint, threading.Lock())
        with checking:
            now = time.monotonic()
            with self._lock:
                cached = self._cache.get(fingerprint)
            if not force and cached is not None and cached[1] > now:
                return cached[0]  # checked by another thread while this one waited
            try:
                found = self._check(key)
            except AuthenticationError:
                with self._lock:
                    self._cache.pop(fingerprint, None)
                    self._checking.pop(fingerprint, None)
                raise
            with self._lock:
                self._cache[fingerprint] = (found, now + self._cache_seconds)
            return found

    def _check(self, key: str) -> Client:
        key_id, secret = _split(key)
        try:
            with self._engine.connect() as conn:
                row = conn.execute(
                    select(api_keys_table).where(api_keys_table.c.key_id == key_id)
                ).first()
        except SQLAlchemyError as err:
            raise DatabaseUnavailableError("the key store cannot be read just now") from err
        usable = row is not None and row.revoked_at is None
        salt = bytes.fromhex(row.salt) if row is not None and usable else _DECOY_SALT
        expected = str(row.key_hash) if row is not None and usable else _DECOY_HASH
        # One scrypt and one constant-time comparison whether the key id exists or not.
        matches = hmac.compare_digest(_hash(secret, salt), expected)
        if row is None or not usable or not matches:
            raise AuthenticationError("unknown or revoked API key")
        return Client(name=row.client, scope=row.scope, key_id=row.key_id)
