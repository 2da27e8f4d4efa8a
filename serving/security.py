"""Guards of the scoring service: where it listens, who calls it, what it deserialises.

- :func:`check_listen_address`: off loopback, the service refuses to start
  unless at least one API key exists: a keyless service on a network is a
  misconfiguration (no case system could call it) that must fail loudly.
- :func:`install_cors`: no CORS headers at all unless origins are configured,
  so browsers refuse cross-origin calls by default.
- :mod:`models.contract.artifact` (shared with batch scoring): run after
  the digest check and before any deserialisation; only the skops format
  holding no type but those desist builds, and no bundled code, is ever
  loaded.
"""

from __future__ import annotations

import ipaddress

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from serving.errors import UnsafeConfigurationError
from serving.settings import Settings


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
