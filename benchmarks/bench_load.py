"""Load: peak throughput closed loop, then 60 s open loop at 70 % of it, audit checked.

One service process (uvicorn, 1 worker, SQLite audit log in a temporary
folder, rate limit off: the load comes from one client) on loopback. The load
generator is the bare keep-alive HTTP/1.1 client of ``bench_serving``:

1. closed loop at 4, 16 and 32 connections for ``--peak-seconds`` each; the
   best throughput is the peak;
2. open loop at ``--fraction`` (0.7) of the peak for ``--seconds`` (60):
   requests leave on a fixed schedule whatever the answers, and latency is
   counted from the scheduled time, so a stall shows in p99 instead of
   slowing the sender down;
3. the audit log must hold exactly one row per 200 the generator received
   over the whole run (warm-up included).

Machine load is recorded: load average, and the CPU used by the server, the
generator and everything else during the open-loop phase (from /proc).

Targets (issue 7): 0 errors, p99 < 25 ms, audit rows == successful scores.

Run: ``.venv/bin/python -m benchmarks.bench_load [--home DIR]`` (without
``--home``, the main config is trained into a temporary home first, ~2.5 min).
Everything stops by itself; results in ``benchmarks/results/load.json``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import uvloop
from sqlalchemy import Table, func, select

from benchmarks.bench_serving import MODEL, Connection, assessments, http_request, train_home
from benchmarks.common import home_parser, save
from benchmarks.support.live import LiveService
from serving.commands import create_key
from serving.database import audit_table, make_engine
from serving.settings import Settings

T = TypeVar("T")

TIMEOUT = 10.0  # a request unanswered after this long counts as an error


class Tally:
    """Every answer the generator received: statuses, latencies (s) and transport errors."""

    def __init__(self) -> None:
        self.ok = 0
        self.statuses: dict[int, int] = {}
        self.transport_errors = 0
        self.latencies: list[float] = []

    def add(self, status: int | None, latency: float | None) -> None:
        if status is None:
            self.transport_errors += 1
            return
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200:
            self.ok += 1
            if latency is not None:
                self.latencies.append(latency)

    def errors(self) -> int:
        return self.transport_errors + sum(n for s, n in self.statuses.items() if s != 200)


async def send(connection: Connection) -> int | None:
    """One request on ``connection``; ``None`` for a timeout or a broken connection."""
    try:
        return await asyncio.wait_for(connection.send(), TIMEOUT)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        connection.writer = None  # reopened by the next send
        return None


def figures(tally: Tally, seconds: float) -> dict[str, Any]:
    ms = np.asarray(tally.latencies) * 1000
    pick = (lambda q: round(float(np.percentile(ms, q)), 2)) if ms.size else (lambda q: None)
    return {
        "ok": tally.ok,
        "errors": tally.errors(),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "transport_errors": tally.transport_errors,
        "throughput_rps": round(tally.ok / seconds, 1),
        "p50_ms": pick(50),
        "p90_ms": pick(90),
        "p99_ms": pick(99),
        "max_ms": round(float(ms.max()), 2) if ms.size else None,
    }


async def closed_loop(
    port: int, request: bytes, concurrency: int, seconds: float, total: Tally
) -> dict[str, Any]:
    """``concurrency`` clients, each sending when its last answer came."""
    tally = Tally()
    connections = [Connection(port, request) for _ in range(concurrency)]
    for connection in connections:  # warm: connect, verify the key once
        total.add(await send(connection), None)
    deadline = time.perf_counter() + seconds

    async def client(connection: Connection) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status = await send(connection)
            tally.add(status, time.perf_counter() - started)
            total.add(status, None)

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        await connection.close()
    return {"concurrency": concurrency, **figures(tally, elapsed)}


async def open_loop(
    port: int,
    request: bytes,
    rate: float,
    seconds: float,
    total: Tally,
    max_connections: int = 32,
) -> dict[str, Any]:
    """Requests at a fixed rate; a new connection when none is idle (at most ``max_connections``).

    A request that finds every connection busy waits for one, its latency still counted
    from its scheduled time: a slow server shows in p99, it does not slow the schedule.
    The default budget is the largest closed-loop level the peak was measured with, as a
    case system's client pool would be; 256 connections made the server spend a third
    more CPU per request than at the peak, so "70% of peak" was 90% of its capacity there.
    """
    tally = Tally()
    idle: list[Connection] = []
    opened = 0
    for _ in range(16):
        connection = Connection(port, request)
        total.add(await send(connection), None)
        idle.append(connection)
        opened += 1
    free = asyncio.Condition()
    late = 0

    async def one(scheduled: float) -> None:
        nonlocal opened
        async with free:
            if not idle and opened < max_connections:
                idle.append(Connection(port, request))
                opened += 1
            await free.wait_for(lambda: bool(idle))
            connection = idle.pop()
        status = await send(connection)
        tally.add(status, time.perf_counter() - scheduled)
        total.add(status, None)
        async with free:
            idle.append(connection)
            free.notify()

    # The generator must not pause: a full garbage collection over tens of thousands of
    # finished tasks took hundreds of milliseconds, during which nothing was sent or read,
    # and every request scheduled then was charged to the server. Finished tasks are
    # dropped as they end and the collector is off for the phase.
    running: set[asyncio.Task[None]] = set()
    sent = 0
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.001:
                late += 1
            task = asyncio.create_task(one(scheduled))
            running.add(task)
            task.add_done_callback(running.discard)
            sent += 1
        await asyncio.gather(*running)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    for connection in idle:
        await connection.close()
    return {
        "rate_rps": round(rate, 1),
        "seconds": seconds,
        "sent": sent,
        "sent_more_than_1ms_late": late,
        "connections_used": opened,
        **figures(tally, elapsed),
    }


def cpu_ticks(pid: int | None = None) -> float:
    """CPU seconds: the whole machine's busy time, or one process tree's (utime+stime+children)."""
    hertz = os.sysconf("SC_CLK_TCK")
    if pid is None:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        values = [int(v) for v in fields]
        idle = values[3] + values[4]
        return (sum(values[:8]) - idle) / hertz
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in stat[11:15]) / hertz


class CpuMeter:
    """Cores used while it ran: the machine, the server, this generator, and everyone else."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.start = (time.perf_counter(), cpu_ticks(), cpu_ticks(server_pid), time.process_time())

    def cores(self) -> dict[str, float]:
        wall, machine, server, generator = (
            now - then
            for now, then in zip(
                (time.perf_counter(), cpu_ticks(), cpu_ticks(self.pid), time.process_time()),
                self.start,
                strict=True,
            )
        )
        used = {
            "machine_busy": machine / wall,
            "server": server / wall,
            "generator": generator / wall,
        }
        used["other_processes"] = used["machine_busy"] - used["server"] - used["generator"]
        return {name: round(value, 2) for name, value in used.items()}


def run(phase: Coroutine[Any, Any, T]) -> T:
    """Run one phase of the generator on uvloop, the service's own event loop.

    The same loop for the closed-loop peak and the open loop. On the default asyncio loop
    the generator spent more CPU per request and answered its sockets later, and every
    millisecond it was late was charged to the server (latency counts from the schedule).
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(phase)


def champion_home(given: Path | None, scratch: Path) -> Path:
    """Return a DESIST_HOME with a champion: ``given``, or the main config trained anew."""
    if given is not None:
        return given.resolve()
    train_home(scratch / "home")
    return scratch / "home"


def service_settings(home: Path, scratch: Path, **changes: Any) -> Settings:
    """Settings of a benchmarked service: the champion of ``home``, a fresh SQLite audit log.

    The per-client rate limit is off: one client sends all the load.
    """
    base: dict[str, Any] = {
        "home": scratch / "service",
        "tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
        "database_url": f"sqlite:///{scratch / 'audit.db'}",
        "rate_limit_per_second": 0,
    }
    return Settings(**{**base, **changes})


def audit_count(url: str, table: Table = audit_table) -> int:
    """Rows in one audit table (the scores' by default) of the database at ``url``."""
    engine = make_engine(url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return int(count)


def main() -> None:
    parser = home_parser(__doc__, "DESIST_HOME with a champion to reuse")
    parser.add_argument("--seconds", type=float, default=60.0, help="open-loop duration")
    parser.add_argument("--peak-seconds", type=float, default=10.0, help="per closed-loop level")
    parser.add_argument("--fraction", type=float, default=0.7, help="open-loop rate / peak")
    parser.add_argument("--connections", type=int, default=32, help="open-loop connection cap")
    parser.add_argument("--name", default="load", help="results file name")
    parser.add_argument(
        "--keep-log", type=Path, help="copy the service's JSON log (latency_ms per request) here"
    )
    args = parser.parse_args()

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    scratch = Path(tempfile.mkdtemp(prefix="bench-load-"))
    settings = service_settings(champion_home(args.home, scratch), scratch)
    key = create_key("load", "score", settings=settings)
    body = json.dumps({"assessments": assessments(1)}).encode()
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    request = http_request("/v1/risk-scores", body, {**headers, "Connection": "keep-alive"})
    total = Tally()
    with LiveService(settings, scratch / "service.log") as live:
        live.start()
        assert live.process is not None
        pid = live.process.pid
        levels = []
        for concurrency in (4, 16, 32):
            meter = CpuMeter(pid)
            level = run(closed_loop(live.port, request, concurrency, args.peak_seconds, total))
            levels.append({**level, "cpu_cores": meter.cores()})
            print(json.dumps(levels[-1]), flush=True)
        peak = max(level["throughput_rps"] for level in levels)
        meter = CpuMeter(pid)
        opened = run(
            open_loop(
                live.port, request, args.fraction * peak, args.seconds, total, args.connections
            )
        )
        opened["cpu_cores"] = meter.cores()
        print(json.dumps(opened), flush=True)
        live.stop()
    rows = audit_count(settings.resolved_database_url())
    if args.keep_log is not None:
        shutil.copyfile(scratch / "service.log", args.keep_log)
    shutil.rmtree(scratch, ignore_errors=True)
    save(
        args.name,
        {
            "model": MODEL,
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "closed_loop": levels,
            "peak_rps": peak,
            "open_loop": opened,
            "audit": {"rows": rows, "successful_scores": total.ok, "equal": rows == total.ok},
            "targets": {
                "open_loop_no_errors": opened["errors"] == 0,
                "open_loop_p99_under_25ms": opened["p99_ms"] is not None and opened["p99_ms"] < 25,
                "audit_rows_equal_successful_scores": rows == total.ok,
            },
        },
    )


if __name__ == "__main__":
    main()
