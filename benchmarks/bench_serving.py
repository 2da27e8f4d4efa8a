"""desist's scoring service against ``mlflow models serve`` of the same registered model.

Both run on loopback, one worker each, in one run: single-assessment requests
at concurrency 1, 8 and 32 for a fixed time each (closed loop), then desist at
a fixed 100 requests/s (open loop, latency counted from the scheduled send
time), then one 1,000-assessment batch repeated. desist writes its audit log
(SQLite under a temporary folder) for every score, as in production.

Targets (issue 4): desist >= 5x mlflow's throughput at equal or lower p99;
p99 < 10 ms at 100 requests/s; a 1,000-assessment batch < 50 ms.

Run: ``.venv/bin/python -m benchmarks.bench_serving [--home DIR] [--seconds 8]``.
``--home`` reuses a DESIST_HOME whose registry has a ``desist-risk@champion``;
without it the main config (``configs/synthetic.toml``) is trained into a
temporary home first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from benchmarks.common import save
from data.schema import ASSESSMENT_FIELDS, Kind
from data.synthetic import SynthConfig, generate_cohort
from serving.commands import create_key
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


Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


async def closed_loop(send: Send, concurrency: int, seconds: float) -> dict[str, Any]:
    """``concurrency`` clients, each sending its next request when the last one answered."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(20):  # warm-up: connections, caches, the key check
            await send(client)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await send(client)
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return summary(latencies, elapsed, errors)


async def open_loop(send: Send, rate: float, seconds: float) -> dict[str, Any]:
    """Requests scheduled at a fixed rate whatever the answers; latency from the schedule."""
    latencies: list[float] = []
    errors = 0
    in_flight = asyncio.Semaphore(256)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(20):
            await send(client)

        async def one(scheduled: float) -> None:
            nonlocal errors
            async with in_flight:
                response = await send(client)
            if response.status_code == 200:
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
    return {"rate_rps": rate, **summary(latencies, seconds, errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, help="DESIST_HOME with a champion to reuse")
    parser.add_argument("--seconds", type=float, default=8.0, help="per concurrency level")
    parser.add_argument("--workers", type=int, default=1, help="desist uvicorn workers")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    home = args.home.resolve() if args.home else scratch / "home"
    if args.home is None:
        train_home(home)
    tracking = f"sqlite:///{home / 'mlflow.db'}"
    version = MlflowClient(tracking, tracking).get_model_version_by_alias(MODEL, "champion")
    features: list[str] = json.loads(version.tags["desist.features"])

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
    }
    mlflow_port, desist_port = free_port(), free_port()
    logs = (scratch / "mlflow.log").open("w"), (scratch / "desist.log").open("w")
    servers = [
        subprocess.Popen(
            [
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
            ],
            env=env,
            cwd=scratch,
            stdout=logs[0],
            stderr=subprocess.STDOUT,
        ),
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
    try:
        mlflow_ready = wait_ready(f"http://127.0.0.1:{mlflow_port}/ping", servers[0])
        desist_ready = wait_ready(f"http://127.0.0.1:{desist_port}/readyz", servers[1])

        sample = assessments(1_000)
        one = sample[0]
        desist_body = json.dumps({"assessments": [one]}).encode()
        batch_body = json.dumps({"assessments": sample}).encode()
        row = [one.get(name) for name in features]
        mlflow_body = json.dumps({"dataframe_split": {"columns": features, "data": [row]}}).encode()
        headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}

        def desist(body: bytes) -> Send:
            url = f"http://127.0.0.1:{desist_port}/v1/risk-scores"
            return lambda client: client.post(url, content=body, headers=headers)

        mlflow_url = f"http://127.0.0.1:{mlflow_port}/invocations"

        def mlflow_send(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
            return client.post(
                mlflow_url, content=mlflow_body, headers={"content-type": "application/json"}
            )

        check = httpx.post(mlflow_url, content=mlflow_body, headers=headers, timeout=30)
        check.raise_for_status()

        levels: dict[str, Any] = {}
        for concurrency in (1, 8, 32):
            m = asyncio.run(closed_loop(mlflow_send, concurrency, args.seconds))
            d = asyncio.run(closed_loop(desist(desist_body), concurrency, args.seconds))
            levels[str(concurrency)] = {
                "mlflow": m,
                "desist": d,
                "throughput_ratio": round(d["throughput_rps"] / m["throughput_rps"], 2),
                "p99_desist_le_mlflow": d["p99_ms"] <= m["p99_ms"],
            }
            print(concurrency, json.dumps(levels[str(concurrency)]))
        open_100 = asyncio.run(open_loop(desist(desist_body), 100.0, args.seconds))

        batch_ms = []
        with httpx.Client(timeout=60) as client:
            url = f"http://127.0.0.1:{desist_port}/v1/risk-scores"
            for _ in range(25):
                started = time.perf_counter()
                response = client.post(url, content=batch_body, headers=headers)
                batch_ms.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text[:300]
                assert len(response.json()["scores"]) == 1_000
        batch_ms = batch_ms[5:]  # warm-up
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
    figures = {
        "model": {"name": MODEL, "version": str(version.version), "features": len(features)},
        "desist_workers": args.workers,
        "mlflow_workers": 1,
        "seconds_per_level": args.seconds,
        "ready_seconds": {"mlflow": round(mlflow_ready, 1), "desist": round(desist_ready, 1)},
        "closed_loop": levels,
        "open_loop_desist": open_100,
        "batch_1000_ms": {
            "p50": round(float(np.percentile(batch_ms, 50)), 1),
            "min": round(min(batch_ms), 1),
            "max": round(max(batch_ms), 1),
        },
        "targets": {
            "throughput_ratio_at_least_5": min(ratios) >= 5,
            "p99_not_worse_than_mlflow": all(
                level["p99_desist_le_mlflow"] for level in levels.values()
            ),
            "p99_under_10ms_at_100rps": open_100["p99_ms"] < 10,
            "batch_1000_under_50ms": float(np.percentile(batch_ms, 50)) < 50,
        },
    }
    save("serving", figures)


if __name__ == "__main__":
    main()
