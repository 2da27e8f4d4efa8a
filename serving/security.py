"""Guards of the scoring service: where it listens, who calls it, what it deserialises.

- :func:`check_listen_address`: off loopback, the service refuses to start
  unless at least one API key exists: a keyless service on a network is a
  misconfiguration (no case system could call it) that must fail loudly.
- :func:`install_cors`: no CORS headers at all unless origins are configured,
  so browsers refuse cross-origin calls by default.
- :func:`check_artifact_format`: run after the digest check and before any
  deserialisation; only the skops format with types from desist's trusted
  packages, and no bundled code, is ever loaded. skops reads its allow-list
  of types from the artifact itself, so the list is checked here first.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from data.errors import UnsafeConfigurationError, UntrustedArtifactError
from models.digest import TRUSTED_TYPE_PREFIXES
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


def check_artifact_format(model_dir: Path, name: str, version: str) -> None:
    """Refuse model files that would be deserialised unsafely.

    Reads only the ``MLmodel`` description (YAML, safe loader), never the
    model itself.

    Raises
    ------
    UntrustedArtifactError
        If the model is not an sklearn flavor saved with skops, bundles code
        (which MLflow would put on ``sys.path``), or lets skops trust a type
        outside :data:`models.digest.TRUSTED_TYPE_PREFIXES`.
    """
    where = f"{name} version {version}"
    try:
        description: Any = yaml.safe_load((model_dir / "MLmodel").read_text())
        flavor = description["flavors"]["sklearn"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise UntrustedArtifactError(f"{where}: no readable sklearn flavor in MLmodel") from err
    if not isinstance(flavor, dict):
        raise UntrustedArtifactError(f"{where}: malformed sklearn flavor in MLmodel")
    serialization = flavor.get("serialization_format")
    if serialization != "skops":
        raise UntrustedArtifactError(
            f"{where}: serialised as {serialization!r}; only skops is loaded "
            "(pickle runs the file's code on load)"
        )
    if flavor.get("code"):
        raise UntrustedArtifactError(f"{where}: bundles code, which would run on load")
    trusted = flavor.get("skops_trusted_types") or []
    if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
        raise UntrustedArtifactError(f"{where}: malformed skops_trusted_types")
    refused = sorted(t for t in trusted if not t.startswith(TRUSTED_TYPE_PREFIXES))
    if refused:
        raise UntrustedArtifactError(f"{where}: asks skops to trust {refused}")
