"""The scoring service in a child process on a free loopback port, for a job that calls it once.

``desist mission`` trains, promotes and then asks the real service for a
score and a recommendation over HTTP, as a case system would. This starts
``desist serve``'s uvicorn with the job's settings, waits until ``/readyz``
answers, and stops it (SIGTERM, then SIGKILL) when the block ends. The
audit rows of a request can be counted afterwards with :func:`audited_rows`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import func, select

from data.errors import DesistError
from serving.audit_export import AUDIT_TABLES
from serving.database import make_engine
from serving.metrics import fresh_multiprocess_dir
from serving.settings import Settings


class ServiceStartError(DesistError):
    """The service process exited, or did not become ready in time; the message says which."""


@dataclass(frozen=True, slots=True)
class RunningService:
    """A started service: where it listens and the child process."""

    url: str
    process: subprocess.Popen[bytes]


def free_loopback_port() -> int:
    """Return a loopback port nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_environment(settings: Settings) -> dict[str, str]:
    """Return the parent's environment with ``settings`` as ``DESIST_*`` variables."""
    values = {
        f"DESIST_{name.upper()}": str(value)
        for name, value in settings.model_dump(mode="json").items()
        if value is not None and not isinstance(value, list | tuple)
    }
    values["DESIST_HOME"] = str(settings.resolved_home())
    values["DESIST_TRACKING_URI"] = settings.resolved_tracking_uri()
    values["DESIST_DATABASE_URL"] = settings.resolved_database_url()
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **values}


@contextmanager
def running_service(
    settings: Settings, log_path: Path, *, timeout: float = 120.0
) -> Iterator[RunningService]:
    """Run the service with ``settings`` on a free loopback port for the block; stop it after.

    Its standard error (JSON log lines) goes to ``log_path``.

    Raises
    ------
    ServiceStartError
        If the process exits before it is ready, or is not ready within ``timeout`` s.
    """
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    code = f"from serving.commands import serve; serve('127.0.0.1', {port}, 1)"
    # Its own empty folder for prometheus-client's multiprocess files: one scrape, every worker.
    metrics = fresh_multiprocess_dir(settings.metrics_dir(port))
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            env={**service_environment(settings), **metrics},
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # its own process group: the stop reaches all of it
        )
        try:
            wait_ready(process, url, log_path, timeout)
            yield RunningService(url, process)
        finally:
            _stop(process)


def wait_ready(
    process: subprocess.Popen[bytes], url: str, log: Path, timeout: float, path: str = "/readyz"
) -> None:
    """Return once ``url`` + ``path`` answers 200 (``/healthz`` only says the process is up).

    Raises
    ------
    ServiceStartError
        If the process exits first, or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ServiceStartError(
                f"the service exited with code {process.returncode} before it was ready "
                f"(its log: {log})"
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise ServiceStartError(f"the service was not ready within {timeout:.0f} s ({log})")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (a graceful stop), SIGKILL if it takes over 30 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


def audited_rows(settings: Settings, kind: str, request_id: str) -> int:
    """Return how many rows the audit log ``kind`` (scores, recommendations) holds for a request."""
    table = AUDIT_TABLES[kind]
    engine = make_engine(settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            query = select(func.count()).select_from(table)
            count = conn.execute(query.where(table.c.request_id == request_id)).scalar_one()
    finally:
        engine.dispose()
    return int(count)
