"""Real service processes and a cuttable TCP link, for end-to-end and fault tests.

:class:`LiveService` runs ``desist serve``'s uvicorn in its own process group
on a free loopback port, so a test can SIGKILL it (and anything it started)
and start it again on the same database. :class:`TcpProxy` forwards a
loopback port to another (PostgreSQL) and can be cut and restored, which
makes a database unreachable without stopping a server others share.
Both clean up after themselves: use them as context managers.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import select

from benchmarks.support.assessments import assessment
from serving.database import audit_table, make_engine
from serving.launcher import ServiceStartError, service_environment, wait_ready
from serving.settings import Settings

#: Assessments per request sent by :class:`Load`: a request's audit rows come in this number.
BATCH = 3
Sender = Callable[[list[dict[str, Any]]], tuple[int, dict[str, Any]]]

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a loopback port nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveService:
    """The scoring service under uvicorn in a child process group, restartable.

    Parameters
    ----------
    settings
        Passed to the child as ``DESIST_*`` variables.
    log_path
        The child's standard error (JSON log lines) is appended here.
    extra_env
        More environment variables (e.g. MLflow retry settings).
    workers
        uvicorn worker processes.
    """

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        workers: int = 1,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {**service_environment(settings), **(extra_env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[str] | None = None

    def start(self, ready: bool = True, timeout: float = 90.0) -> None:
        """Start the process; wait until ``/readyz`` (or only ``/healthz``) answers 200."""
        self._log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from serving.commands import serve; "
                f"serve('127.0.0.1', {self.port}, {self.workers})",
            ],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            start_new_session=True,  # its own process group: killpg reaches every worker
        )
        path = "/readyz" if ready else "/healthz"
        try:
            wait_ready(self.process, self.url, self.log_path, timeout, path)
        except ServiceStartError as err:
            # The log's tail, not only its path: a failing test or benchmark shows why.
            raise RuntimeError(f"{err}: {self.log_path.read_text()[-2000:]}") from err

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group and wait for the process to end."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), forcefully if that takes more than 30 s."""
        self.kill(signal.SIGTERM)

    def __enter__(self) -> LiveService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Killed however the block ends: an error inside it must not leave a server running.
        self.kill()


class TcpProxy:
    """Forward ``127.0.0.1:port`` to a target; :meth:`cut` drops it all, :meth:`restore` reopens.

    :meth:`freeze` keeps every connection open but stops forwarding (like a proxy
    stopped with SIGSTOP: the kernel still accepts connections and data, nothing
    answers); ``replies_only`` lets requests through and holds the answers (a
    commit reaches the server, its outcome never comes back). :meth:`thaw` resumes.

    Parameters
    ----------
    target_port
        Where connections go (on 127.0.0.1).
    """

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._listener: threading.Thread | None = None
        self._requests_flow = threading.Event()
        self._replies_flow = threading.Event()
        self._requests_flow.set()
        self._replies_flow.set()

    def freeze(self, replies_only: bool = False) -> None:
        """Stop forwarding (both ways, or only the server's answers); connections stay open."""
        self._replies_flow.clear()
        if not replies_only:
            self._requests_flow.clear()

    def thaw(self) -> None:
        """Forward again what was held and what comes next."""
        self._requests_flow.set()
        self._replies_flow.set()

    def restore(self) -> None:
        """Accept and forward connections again (on the same port)."""
        if self._open.is_set():
            return
        server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        server.settimeout(0.1)
        self._open.set()
        self._listener = threading.Thread(target=self._accept, args=(server,), daemon=True)
        self._listener.start()

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        self._open.clear()
        if self._listener is not None:
            self._listener.join(timeout=5)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        with server:
            while self._open.is_set():
                if not self._requests_flow.is_set():
                    time.sleep(0.05)  # frozen: connections wait in the kernel's backlog
                    continue
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                with self._lock:
                    self._sockets |= {client, upstream}
                for source, sink, gate in (
                    (client, upstream, self._requests_flow),
                    (upstream, client, self._replies_flow),
                ):
                    threading.Thread(target=_pump, args=(source, sink, gate), daemon=True).start()

    def __enter__(self) -> TcpProxy:
        self.restore()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.thaw()
        self.cut()


def _pump(source: socket.socket, sink: socket.socket, gate: threading.Event) -> None:
    try:
        source.settimeout(None)
        while data := source.recv(65536):
            gate.wait()
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def audit_groups(settings: Settings) -> Counter[str]:
    """Rows per request id in the audit log."""
    engine = make_engine(settings.resolved_database_url())
    with engine.connect() as conn:
        ids = conn.execute(select(audit_table.c.request_id)).scalars().all()
    engine.dispose()
    return Counter(ids)


@dataclass
class Load:
    """Client threads scoring batches of ``BATCH`` until stopped; every answer is kept."""

    send: Sender
    threads: int = 4
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    transport_errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            n = next(self._counter)
            batch = [assessment(subject_ref=f"load-{n}-{i}") for i in range(BATCH)]
            try:
                self.answers.append(self.send(batch))
            except httpx.TransportError:
                self.transport_errors += 1
                time.sleep(0.02)

    def wait_for(self, status: int, count: int, timeout: float = 60) -> None:
        """Block until ``count`` more answers with ``status`` arrived."""
        target = self.count(status) + count
        deadline = time.monotonic() + timeout
        while self.count(status) < target:
            assert time.monotonic() < deadline, f"{count} x {status} not seen: {self.statuses()}"
            time.sleep(0.02)

    def count(self, status: int) -> int:
        return sum(1 for code, _ in list(self.answers) if code == status)

    def statuses(self) -> Counter[int]:
        return Counter(code for code, _ in list(self.answers))

    def scored_request_ids(self) -> list[str]:
        return [body["request_id"] for code, body in list(self.answers) if code == 200]


def http_sender(url: str, key: str) -> Sender:
    """Return a sender posting batches to a live service, one keep-alive client per thread."""
    local = threading.local()

    def send(batch: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10
            )
        response = local.client.post("/v1/risk-scores", json={"assessments": batch})
        return response.status_code, response.json()

    return send


def set_immutable(paths: list[Path], on: bool) -> None:
    """Make files read-only even for root (``chattr +i``), or writable again."""
    for path in paths:
        if path.exists():
            subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)
