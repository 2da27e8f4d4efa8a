"""Which real parts of the team stack this machine has, for the ``team`` tests.

A test that needs a missing part skips with the reason, unless
``DESIST_REQUIRE_TEAM=1`` (``.ci/run``), where it fails instead. Redis is also
needed by tests outside the ``team`` marker (the shared rate limits); they
fail instead of skipping under ``DESIST_REQUIRE_REDIS=1`` as well.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket

import pytest

#: Where the tests look for Redis (``.ci/run`` starts one there).
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def require(problem: str | None, *, also: tuple[str, ...] = ()) -> None:
    """Skip (or, under ``DESIST_REQUIRE_TEAM=1``, fail) when ``problem`` names a missing part.

    ``also`` names more ``DESIST_REQUIRE_*`` variables that turn the skip into a failure.
    """
    if problem is None:
        return
    for variable in ("DESIST_REQUIRE_TEAM", *also):
        if os.environ.get(variable) == "1":
            pytest.fail(f"{variable}=1 but {problem}")
    pytest.skip(problem)


def redis_problem() -> str | None:
    """Say why the tests cannot use Redis at :data:`REDIS_HOST`:``REDIS_PORT``, or ``None``."""
    if importlib.util.find_spec("redis") is None:
        return "the redis package is not installed (pip install -e '.[team]')"
    if not port_open(REDIS_HOST, REDIS_PORT):
        return f"Redis is not listening on {REDIS_HOST}:{REDIS_PORT}"
    return None


def require_redis() -> str:
    """Skip or fail (``DESIST_REQUIRE_TEAM``/``DESIST_REQUIRE_REDIS``) without Redis; its URL."""
    require(redis_problem(), also=("DESIST_REQUIRE_REDIS",))
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


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


def haproxy_problem() -> str | None:
    """Say why HAProxy cannot run here, or ``None``."""
    if shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
        return "haproxy is not installed (apt-get install -y haproxy)"
    return None


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
