"""Which real parts of the team stack this machine has, for the ``team`` tests.

A test that needs a missing part skips with the reason, unless
``DESIST_REQUIRE_TEAM=1`` (``.ci/run``), where it fails instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket

import pytest


def require(problem: str | None) -> None:
    """Skip (or, under ``DESIST_REQUIRE_TEAM=1``, fail) when ``problem`` names a missing part."""
    if problem is None:
        return
    if os.environ.get("DESIST_REQUIRE_TEAM") == "1":
        pytest.fail(f"DESIST_REQUIRE_TEAM=1 but {problem}")
    pytest.skip(problem)


def spark_problem() -> str | None:
    """Say why Spark cannot run here, or ``None``."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[team]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime for Spark (apt-get install openjdk-17-jre-headless)"
    return None


def port_open(host: str, port: int) -> bool:
    """Say whether something listens on ``host:port``."""
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) == 0


def mlflow_server_problem() -> str | None:
    """Say why the team MLflow server cannot start here, or ``None``."""
    if importlib.util.find_spec("flask_wtf") is None:
        return "mlflow[auth] is not installed (pip install -e '.[team]')"
    if not port_open("127.0.0.1", 5432):
        return "PostgreSQL is not listening on 127.0.0.1:5432"
    return None


def free_port() -> int:
    """Return a loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
