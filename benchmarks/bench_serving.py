"""desist's scoring service against ``mlflow models serve`` of the same registered model.

Both run on loopback, one worker each, in one run: single-assessment requests
at concurrency 1, 8 and 32 for a fixed time each (closed loop), then desist at
a fixed 100 requests/s (open loop, latency counted from the scheduled send
time), then one 1,000-assessment batch repeated, each request alternating with
the same body sent to the plainest audited service
(:mod:`benchmarks.support.floor_service`: parse, frame, ``predict_proba``, one
SQLite row per score, answer; no validation, reasons, digests or key check)
as a reference from the same minutes on the same machine (``plain_batch_1000_ms``).

desist runs as in production but for one setting: its audit log is on (SQLite
under a temporary folder, every score committed before its 200; at the end the
benchmark counts the rows against the scores answered, ``audit``), and so are
the API key check, validation, request ids, metrics and deadlines; only the
per-client rate limit is off (``DESIST_RATE_LIMIT_PER_SECOND=0``), because one
client sending hundreds of requests a second would be answered 429. The limit
on unverified keys stays on; the benchmark's key is verified once and cached.

Targets (issue 15, ``targets``): a 1,000-assessment request p50 <= 20 ms;
single-assessment throughput >= 20x mlflow's at 8 clients. Earlier targets
(issue 4, ``earlier_targets``): desist >= 5x mlflow's throughput at every
level at equal or lower p99; p99 < 10 ms at 100 requests/s; a
1,000-assessment batch < 50 ms.

The load generator is a bare keep-alive HTTP/1.1 client on asyncio (see
``Connection``), bounded by its number of connections; every phase stops
after its fixed time.

Run: ``.venv/bin/python -m benchmarks.bench_serving [--home DIR] [--seconds 8]``.
``--batch-only [--batch-repeats N]`` times the batch alone (no mlflow), to compare two
checkouts back to back: run this script from each with ``PYTHONPATH`` at it.
``--home`` reuses a DESIST_HOME whose registry has a ``desist-risk@champion``;
without it the main config (``configs/synthetic.toml``) is trained into a
temporary home first.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from sqlalchemy import func, select

from benchmarks.common import save
from data.schema import ASSESSMENT_FIELDS, Kind
from data.synthetic import SynthConfig, generate_cohort
from models.contract.tags import TAG_FAMILY, TAG_FEATURES
from serving.commands import create_key
from serving.database import audit_table, make_engine
from serving.settings import Settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = "desist-risk"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train_home(home: Path) -> None:
    from data.schema import NEVER_FEATURES
    from pipeline.config import load_risk_config
    from pipeline.registry import promote
    from pipeline.tracking import Tracker
    from pipeline.train_risk import train

    config = load_risk_config(REPO / "configs" / "synthetic.toml")
    tracker = Tracker.for_home(home)
    result = train(config, tracker=tracker, progress=print)
    decision = promote(tracker, MODEL, result.version, config.gates, NEVER_FEATURES)
    if not decision.promoted:
        promote(
            tracker,
            MODEL,
            result.version,
            config.gates,
            NEVER_FEATURES,
            force=True,
            reason="benchmark store",
        )


def assessments(n: int) -> list[dict[str, Any]]:
    """Realistic assessments from the synthetic cohort, as a case system sends them."""
    cohort, _ = generate_cohort(SynthConfig(rows=n, seed=99))
    out = []
    for i, row in enumerate(cohort.to_dict("records")):
        item: dict[str, Any] = {"subject_ref": f"bench-{i}"}
        for spec in ASSESSMENT_FIELDS[1:]:
            value = row.get(spec.name)
            if value is None or pd.isna(value):
                continue  # not assessed
            if spec.kind is Kind.CATEGORY:
                item[spec.name] = str(value)
            elif spec.kind is Kind.NUMBER:
                item[spec.name] = float(value)
            else:
                item[spec.name] = int(value)
        out.append(item)
    return out


def wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready within {seconds} s")


def summary(latencies: list[float], seconds: float, errors: int) -> dict[str, Any]:
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if ms.size else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if ms.size else None,
    }


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for these two servers.

    httpx costs a few milliseconds of CPU per request here, as much as the
    servers under test on this 2-core machine; a bare connection keeps the
    load generator's share small, so the figures are the servers'.
    """

    #: Answers with status 200, per port: the scores the audit log must hold.
    answered: ClassVar[collections.Counter[int]] = collections.Counter()

    def __init__(self, port: int, request: bytes) -> None:
        self.port = port
        self.request = request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> int:
        """Send the request, read the whole response, return its status.

        A connection the server closed while idle (keep-alive timeout) is reopened once.
        """
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            try:
                self.writer.write(self.request)
                head = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (asyncio.IncompleteReadError, ConnectionError):
                self.writer = None
                if attempt == 2:
                    raise
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        assert self.reader is not None
        await self.reader.readexactly(length)
        if status == 200:
            Connection.answered[self.port] += 1
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


def http_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def closed_loop(
    port: int, request: bytes, concurrency: int, seconds: float
) -> dict[str, Any]:
    """``concurrency`` clients, each sending its next request when the last one answered."""
    latencies: list[float] = []
    errors = 0
    connections = [Connection(port, request) for _ in range(concurrency)]

    async def warm(connection: Connection) -> None:  # connections, caches, the key check
        for _ in range(3):
            await connection.send()

    await asyncio.gather(*(warm(c) for c in connections))
    deadline = time.perf_counter() + seconds

    async def worker(connection: Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if await connection.send() == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        await connection.close()
    return summary(latencies, elapsed, errors)


async def open_loop(port: int, request: bytes, rate: float, seconds: float) -> dict[str, Any]:
    """Requests scheduled at a fixed rate whatever the answers; latency from the schedule.

    At most 64 connections: a request waits for a free one, and that wait counts.
    """
    latencies: list[float] = []
    errors = 0
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(64):
        connection = Connection(port, request)
        await connection.send()
        idle.put_nowait(connection)

    async def one(scheduled: float) -> None:
        nonlocal errors
        connection = await idle.get()
        try:
            status = await connection.send()
        finally:
            idle.put_nowait(connection)
        if status == 200:
            latencies.append(time.perf_counter() - scheduled)
        else:
            errors += 1

    start = time.perf_counter()
    tasks = []
    for i in range(int(rate * seconds)):
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        await idle.get_nowait().close()
    return {"rate_rps": rate, **summary(latencies, seconds, errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, help="DESIST_HOME with a champion to reuse")
    parser.add_argument("--seconds", type=float, default=8.0, help="per concurrency level")
    parser.add_argument("--workers", type=int, default=1, help="desist uvicorn workers")
    parser.add_argument("--name", default="serving", help="results file name")
    parser.add_argument(
        "--batch-only",
        action="store_true",
        help="only the 1,000-assessment batch (no mlflow, no single-assessment levels): "
        "for comparing two checkouts back to back",
    )
    parser.add_argument(
        "--batch-repeats", type=int, default=25, help="batch requests (the first 5 warm up)"
    )
    args = parser.parse_args()

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    scratch = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    home = args.home.resolve() if args.home else scratch / "home"
    if args.home is None:
        train_home(home)
    tracking = f"sqlite:///{home / 'mlflow.db'}"
    version = MlflowClient(tracking, tracking).get_model_version_by_alias(MODEL, "champion")
    features: list[str] = json.loads(version.tags[TAG_FEATURES])

    settings = Settings(
        home=scratch / "service",
        tracking_uri=tracking,
        database_url=f"sqlite:///{scratch / 'audit.db'}",
    )
    key = create_key("benchmark", "score", settings=settings)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DESIST_HOME": str(settings.home),
        "DESIST_TRACKING_URI": tracking,
        "DESIST_DATABASE_URL": settings.resolved_database_url(),
        # For the benchmark only: one client at hundreds of requests/s would be answered 429.
        # Everything else (audit, key check, validation, metrics, deadlines) stays on.
        "DESIST_RATE_LIMIT_PER_SECOND": "0",
    }
    mlflow_port, desist_port, plain_port = free_port(), free_port(), free_port()
    logs = (scratch / "mlflow.log").open("w"), (scratch / "desist-service.log").open("w")
    mlflow_command = [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/{MODEL}@champion",
        "--env-manager",
        "local",
        "-p",
        str(mlflow_port),
        "--host",
        "127.0.0.1",
    ]
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from serving.commands import serve; "
                f"serve('127.0.0.1', {desist_port}, {args.workers})",
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=logs[1],
        ),
    ]
    plain_command = [
        sys.executable,
        "-m",
        "benchmarks.support.floor_service",
        "--port",
        str(plain_port),
        "--tracking",
        tracking,
        "--database",
        str(scratch / "plain-audit.db"),
    ]
    servers.append(
        subprocess.Popen(plain_command, env=env, cwd=REPO, stdout=logs[0], stderr=subprocess.STDOUT)
    )
    if not args.batch_only:
        servers.append(
            subprocess.Popen(
                mlflow_command, env=env, cwd=scratch, stdout=logs[0], stderr=subprocess.STDOUT
            )
        )
    try:
        desist_ready = wait_ready(f"http://127.0.0.1:{desist_port}/readyz", servers[0])
        wait_ready(f"http://127.0.0.1:{plain_port}/readyz", servers[1])
        mlflow_ready = 0.0
        if not args.batch_only:
            mlflow_ready = wait_ready(f"http://127.0.0.1:{mlflow_port}/ping", servers[2])

        sample = assessments(1_000)
        one = sample[0]
        desist_body = json.dumps({"assessments": [one]}).encode()
        batch_body = json.dumps({"assessments": sample}).encode()
        row = [one.get(name) for name in features]
        mlflow_body = json.dumps({"dataframe_split": {"columns": features, "data": [row]}}).encode()
        headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}

        desist_request = http_request(
            "/v1/risk-scores", desist_body, {**headers, "Connection": "keep-alive"}
        )
        mlflow_request = http_request(
            "/invocations", mlflow_body, {"content-type": "application/json"}
        )
        levels: dict[str, Any] = {}
        open_100: dict[str, Any] = {}
        for concurrency in () if args.batch_only else (1, 8, 32):
            if concurrency == 1:
                mlflow_url = f"http://127.0.0.1:{mlflow_port}/invocations"
                check = httpx.post(mlflow_url, content=mlflow_body, headers=headers, timeout=30)
                check.raise_for_status()
            m = asyncio.run(closed_loop(mlflow_port, mlflow_request, concurrency, args.seconds))
            d = asyncio.run(closed_loop(desist_port, desist_request, concurrency, args.seconds))
            levels[str(concurrency)] = {
                "mlflow": m,
                "desist": d,
                "throughput_ratio": round(d["throughput_rps"] / m["throughput_rps"], 2),
                "p99_desist_le_mlflow": d["p99_ms"] <= m["p99_ms"],
            }
            print(concurrency, json.dumps(levels[str(concurrency)]), flush=True)
        if not args.batch_only:
            open_100 = asyncio.run(open_loop(desist_port, desist_request, 100.0, args.seconds))

        batch_ms: list[float] = []
        plain_ms: list[float] = []
        batch_scored = 0
        with httpx.Client(timeout=60) as client:
            url = f"http://127.0.0.1:{desist_port}/v1/risk-scores"
            plain_url = f"http://127.0.0.1:{plain_port}/v1/risk-scores"
            for _ in range(args.batch_repeats):
                started = time.perf_counter()
                response = client.post(url, content=batch_body, headers=headers)
                batch_ms.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text[:300]
                scored = len(response.json()["scores"])
                assert scored == 1_000
                batch_scored += scored
                started = time.perf_counter()
                response = client.post(plain_url, content=batch_body)
                plain_ms.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text[:300]
                assert len(response.json()["scores"]) == 1_000
        batch_ms, plain_ms = batch_ms[5:], plain_ms[5:]  # warm-up
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        for handle in logs:
            handle.close()

    ratios = [level["throughput_ratio"] for level in levels.values()]
    batch_p50 = float(np.percentile(batch_ms, 50))
    plain_p50 = float(np.percentile(plain_ms, 50))
    engine = make_engine(settings.resolved_database_url())
    with engine.connect() as conn:
        audit_rows = int(conn.execute(select(func.count()).select_from(audit_table)).scalar_one())
    engine.dispose()
    scores_answered = Connection.answered[desist_port] + batch_scored
    figures = {
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "model": {
            "name": MODEL,
            "version": str(version.version),
            "family": version.tags.get(TAG_FAMILY),
            "features": len(features),
        },
        "desist_workers": args.workers,
        "mlflow_workers": 1,
        "seconds_per_level": args.seconds,
        "ready_seconds": {"mlflow": round(mlflow_ready, 1), "desist": round(desist_ready, 1)},
        "closed_loop": levels,
        "open_loop_desist": open_100,
        "audit": {
            "rows": audit_rows,
            "scores_answered": scores_answered,
            "every_score_audited": audit_rows == scores_answered,
        },
        "rate_limit_per_client": "off (benchmark only)",
        "batch_1000_ms": {
            "requests": len(batch_ms),
            "p50": round(batch_p50, 1),
            "min": round(min(batch_ms), 1),
            "max": round(max(batch_ms), 1),
        },
        "plain_batch_1000_ms": {
            "requests": len(plain_ms),
            "p50": round(plain_p50, 1),
            "min": round(min(plain_ms), 1),
            "max": round(max(plain_ms), 1),
        },
        "batch_p50_desist_to_plain": round(batch_p50 / plain_p50, 2),
        "targets": {"batch_1000_p50_at_most_20ms": batch_p50 <= 20},
        "earlier_targets": {"batch_1000_under_50ms": batch_p50 < 50},
    }
    if not args.batch_only:
        figures["targets"]["throughput_ratio_at_8_clients_at_least_20"] = (
            levels["8"]["throughput_ratio"] >= 20
        )
        figures["earlier_targets"] |= {
            "throughput_ratio_at_least_5": min(ratios) >= 5,
            "p99_not_worse_than_mlflow": all(
                level["p99_desist_le_mlflow"] for level in levels.values()
            ),
            "p99_under_10ms_at_100rps": open_100["p99_ms"] < 10,
        }
    save(args.name, figures)


if __name__ == "__main__":
    main()
