"""The team stack on one machine: a shared MLflow server with roles, for a trial.

``team_up`` starts ``mlflow server`` with a PostgreSQL backend store (the
database is created when absent), artifacts proxied by the server
(``--artifacts-destination`` under ``DESIST_HOME/team``, so clients never
touch the artifact folder) and MLflow's ``basic-auth`` app with
``default_permission = NO_PERMISSIONS``; then it creates one user and one
role per :data:`pipeline.team_access.TEAM_ROLES` entry (data scientist,
reviewer, service account) and grants each role its permissions.

Every secret comes from the environment and goes to the server through its
environment, never its command line, config file, log or MLflow tags:
``MLFLOW_FLASK_SERVER_SECRET_KEY``, ``MLFLOW_AUTH_ADMIN_PASSWORD`` and one
``DESIST_TEAM_<ROLE>_PASSWORD`` per role (at least 12 characters, MLflow's
rule). Clients then use ``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_USERNAME``
and ``MLFLOW_TRACKING_PASSWORD``, which MLflow reads itself.

Run as ``python -m pipeline.team_stack up|down|status`` (``make team-up``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests
from psycopg import sql

from pipeline.team_access import (
    ADMIN_USER,
    TEAM_ROLES,
    TeamStackError,
    check_secrets,
    provision_users,
)
from pipeline.tracking import desist_home

#: The local PostgreSQL server (trust authentication for ``postgres`` on loopback).
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
TRACKING_DATABASE = "desist_mlflow"
AUTH_DATABASE = "desist_mlflow_auth"


@dataclass(frozen=True, slots=True)
class TeamStackConfig:
    """Where the team stack lives and listens.

    Parameters
    ----------
    home
        Its folder: auth config, proxied artifacts, pid and log files.
    postgres
        PostgreSQL server URL without a database (trust auth on loopback).
    database, auth_database
        The tracking/registry store and the users/permissions store.
    workers
        Server worker processes (one is plenty for a trial on two cores).
    """

    home: Path = field(default_factory=lambda: desist_home() / "team")
    host: str = "127.0.0.1"
    port: int = 5000
    postgres: str = field(
        default_factory=lambda: os.environ.get("DESIST_TEAM_POSTGRES", DEFAULT_POSTGRES)
    )
    database: str = TRACKING_DATABASE
    auth_database: str = AUTH_DATABASE
    workers: int = 1
    ready_seconds: float = 90.0

    @property
    def url(self) -> str:
        """The tracking URI clients set as ``MLFLOW_TRACKING_URI``."""
        return f"http://{self.host}:{self.port}"

    @property
    def backend_store(self) -> str:
        """The tracking and registry store (no password: trust auth)."""
        return f"{self.postgres}/{self.database}"

    @property
    def artifacts(self) -> Path:
        """Where the server keeps the artifacts it proxies."""
        return self.home / "artifacts"

    @property
    def auth_config(self) -> Path:
        """The basic-auth app's config file (no secret in it)."""
        return self.home / "basic_auth.ini"

    @property
    def pid_file(self) -> Path:
        """The server's process id, for ``team_down``."""
        return self.home / f"mlflow-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        """The server's output."""
        return self.home / f"mlflow-{self.port}.log"


def ensure_database(postgres: str, name: str) -> bool:
    """Create database ``name`` on the PostgreSQL server unless it exists; say if it did.

    Raises
    ------
    TeamStackError
        If the server cannot be reached.
    """
    try:
        with psycopg.connect(f"{postgres}/postgres", autocommit=True, connect_timeout=5) as admin:
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone():
                return False
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    except psycopg.Error as err:
        raise TeamStackError(f"PostgreSQL at {postgres} failed: {err}".splitlines()[0]) from err


def drop_database(postgres: str, name: str) -> None:
    """Drop database ``name`` (tests use throwaway ones), closing its connections."""
    with psycopg.connect(f"{postgres}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def write_auth_config(config: TeamStackConfig) -> Path:
    """Write the basic-auth config: nothing readable by default, users in PostgreSQL.

    The admin password is not in it: MLflow reads ``MLFLOW_AUTH_ADMIN_PASSWORD``.
    """
    config.home.mkdir(parents=True, exist_ok=True)
    config.auth_config.write_text(
        "[mlflow]\n"
        "# A logged-in user sees nothing until a role grants it.\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = {config.postgres}/{config.auth_database}\n"
        f"admin_username = {ADMIN_USER}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        "# Each request re-hashes the password otherwise (about 1 s per call on a busy\n"
        "# 2-core machine; a training run makes hundreds). A changed password or a deleted\n"
        "# user reaches the other workers within this many seconds.\n"
        "auth_cache_ttl_seconds = 60\n"
    )
    return config.auth_config


def server_command(config: TeamStackConfig) -> list[str]:
    """Return the ``mlflow server`` command line (no secret in it)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    return [
        str(mlflow) if mlflow.exists() else "mlflow",
        "server",
        "--backend-store-uri",
        config.backend_store,
        "--serve-artifacts",
        "--artifacts-destination",
        str(config.artifacts),
        "--default-artifact-root",
        "mlflow-artifacts:/",
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--workers",
        str(config.workers),
        "--app-name",
        "basic-auth",
    ]


def _server_environment(config: TeamStackConfig, environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    # Never hand the server a client's identity: it would be meaningless there.
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    env |= {
        "MLFLOW_AUTH_CONFIG_PATH": str(config.auth_config),
        # 5 processes instead of 13 (about 0.8 GiB instead of 1.9 GiB): desist runs no MLflow jobs.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_pid(config: TeamStackConfig) -> int | None:
    """Return the pid in the pid file, if that process is still our ``mlflow server``."""
    try:
        pid = int(config.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid if _alive(pid) else None
    return pid if b"server" in command and any(b"mlflow" in part for part in command) else None


def wait_ready(url: str, seconds: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``url/health`` answers 200.

    Raises
    ------
    TeamStackError
        If the server exits or is not ready within ``seconds``.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TeamStackError(f"mlflow server exited with code {process.returncode}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TeamStackError(f"mlflow server at {url} not ready after {seconds:.0f} s")


@dataclass(frozen=True, slots=True)
class TeamStack:
    """A running team stack."""

    config: TeamStackConfig
    pid: int
    started: bool

    @property
    def url(self) -> str:
        """The tracking URI."""
        return self.config.url


def team_up(
    config: TeamStackConfig | None = None, environ: Mapping[str, str] = os.environ
) -> TeamStack:
    """Start (or find running) the MLflow server of the team stack, and provision its users.

    Raises
    ------
    TeamStackError
        If a secret is missing, PostgreSQL is unreachable, or the server does
        not become ready.
    """
    config = config or TeamStackConfig()
    check_secrets(environ)
    ensure_database(config.postgres, config.database)
    ensure_database(config.postgres, config.auth_database)
    write_auth_config(config)
    config.artifacts.mkdir(parents=True, exist_ok=True)
    running = _running_pid(config)
    if running is not None:
        wait_ready(config.url, config.ready_seconds)
        provision_users(config.url, environ)
        return TeamStack(config, running, started=False)
    with socket.socket() as probe:
        probe.settimeout(2)
        if probe.connect_ex((config.host, config.port)) == 0:
            # Something else answers there: provisioning it would talk to the wrong server.
            raise TeamStackError(f"{config.host}:{config.port} is taken by another process")
    with config.log_file.open("ab") as log:
        process = subprocess.Popen(
            server_command(config),
            env=_server_environment(config, environ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so team_down stops its workers with it.
            start_new_session=True,
        )
    config.pid_file.write_text(f"{process.pid}\n")
    try:
        wait_ready(config.url, config.ready_seconds, process)
        provision_users(config.url, environ)
    except BaseException:
        _stop(process.pid)
        config.pid_file.unlink(missing_ok=True)
        raise
    return TeamStack(config, process.pid, started=True)


def _stop(pid: int, seconds: float = 20.0) -> None:
    """Stop process group ``pid`` (a server we started in its own session)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            reaped, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            reaped = pid if not _alive(pid) else 0
        if reaped == pid:
            break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # workers left behind, if any


def team_down(config: TeamStackConfig | None = None) -> bool:
    """Stop the team stack's MLflow server; say whether one was running.

    The databases and artifacts stay: ``team_up`` finds them again.
    """
    config = config or TeamStackConfig()
    pid = _running_pid(config)
    if pid is None:
        config.pid_file.unlink(missing_ok=True)
        return False
    _stop(pid)
    config.pid_file.unlink(missing_ok=True)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pipeline.team_stack up|down|status``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.team_stack")
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DESIST_TEAM_PORT", 5000)))
    args = parser.parse_args(argv)
    config = TeamStackConfig(port=args.port)
    try:
        if args.action == "up":
            stack = team_up(config)
            how = "started" if stack.started else "already running"
            print(
                f"MLflow team server {how} at {stack.url} (pid {stack.pid})\n"
                f"  store:     {config.backend_store}; users in {config.auth_database}\n"
                f"  artifacts: {config.artifacts} (proxied: clients never touch it)\n"
                f"  log:       {config.log_file}\n"
                + "".join(
                    f"  {role.name:<15} user {role.username(os.environ):<16} {role.description}\n"
                    for role in TEAM_ROLES
                )
                + f"  use: export MLFLOW_TRACKING_URI={stack.url} MLFLOW_TRACKING_USERNAME=... "
                "MLFLOW_TRACKING_PASSWORD=..."
            )
        elif args.action == "down":
            stopped = team_down(config)
            print("MLflow team server stopped" if stopped else "no MLflow team server running")
        else:
            pid = _running_pid(config)
            print(f"running at {config.url} (pid {pid})" if pid else "not running")
            return 0 if pid else 1
    except TeamStackError as err:
        print(f"team stack: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
