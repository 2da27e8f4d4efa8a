"""Two ``desist serve`` replicas behind HAProxy against one replica called directly, same run.

Both set-ups share the real parts a team runs: the audit log and key store in
one PostgreSQL database (a throwaway one, dropped after), the rate limits in
Redis, the model in one MLflow registry. A pool of client threads sends the
same number of score requests to each; every answer must be 200 and every
200 must have its audit rows. On this 2-core machine the replicas compete
for the same cores (and with the proxy and the clients), so the figure is
about correctness and the proxy's cost, not about speed.

The helpers here are also what ``tests/team/test_replicas.py`` starts its
stacks with.

Run: ``.venv/bin/python -m benchmarks.bench_replicas [--requests N] [--clients C]``.
Needs PostgreSQL at 127.0.0.1:5432, Redis at 127.0.0.1:6379 and haproxy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

from benchmarks.common import save
from benchmarks.support.assessments import assessment
from benchmarks.support.registry import Store
from serving.database import audit_table, make_engine

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"
#: Assessments per request: the audit rows of one 200.
BATCH = 2


def train_champion(home: Path) -> Store:
    """Train the suite's small scorecard into ``home``'s registry and make it champion."""
    from benchmarks.support.configs import small_config
    from models.risk import ScorecardSettings
    from pipeline.config import GateConfig
    from pipeline.registry import promote
    from pipeline.tracking import Tracker
    from pipeline.train_risk import train

    tracker = Tracker.for_home(home)
    result = train(small_config(models=(ScorecardSettings(),)), tracker=tracker)
    gates = GateConfig(auc_tolerance=1.0)  # the gates have their own tests
    assert promote(tracker, result.registered_model, result.version, gates, ()).promoted
    return Store(home)


@contextmanager
def audit_database() -> Iterator[str]:
    """Yield the SQLAlchemy URL of a new PostgreSQL database; drop it after."""
    from pipeline.team_stack import drop_database, ensure_database

    name = f"desist_replicas_{uuid.uuid4().hex[:10]}"
    ensure_database(POSTGRES, name)
    try:
        yield f"{POSTGRES.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    finally:
        drop_database(POSTGRES, name)


def replica_environment(
    home: Path, store: Store, database_url: str, **settings: object
) -> dict[str, str]:
    """Return every replica's environment: shared registry, audit database and Redis limits.

    ``settings`` are more ``DESIST_*`` settings by field name (``poll_seconds=1``).
    """
    values: dict[str, object] = {
        "home": home,
        "tracking_uri": store.tracking_uri,
        "database_url": database_url,
        "rate_limit_backend": "redis",
        "redis_url": REDIS,
        # A prefix per run: runs sharing the Redis never share a bucket.
        "redis_prefix": f"desist-replicas:{uuid.uuid4().hex}:",
        "threads": 1,
        **settings,
    }
    return {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        **{f"DESIST_{name.upper()}": str(value) for name, value in values.items()},
    }


def create_score_key(environ: Mapping[str, str]) -> str:
    """Create a score key in the replicas' key store (as the operator would, once)."""
    from serving.commands import create_key
    from serving.settings import Settings

    settings = Settings(
        home=Path(environ["DESIST_HOME"]), database_url=environ["DESIST_DATABASE_URL"]
    )
    return create_key("case-system", "score", settings=settings)


@dataclass(frozen=True, slots=True)
class Answer:
    """One score request as the client saw it (times from ``time.monotonic``)."""

    sent: float
    done: float
    status: int
    request_id: str | None
    model_version: str | None


def send_scores(
    url: str, key: str, requests_total: int, clients: int, stop: threading.Event | None = None
) -> list[Answer]:
    """Send score requests from ``clients`` threads, one connection each; return every answer.

    ``requests_total`` in all, or, with ``stop``, until it is set.
    """
    headers = {"Authorization": f"Bearer {key}"}
    body = {"assessments": [assessment(subject_ref=f"r-{i}") for i in range(BATCH)]}
    counter = iter(range(requests_total))
    lock = threading.Lock()

    def client(_: int) -> list[Answer]:
        answers: list[Answer] = []
        with requests.Session() as session:
            while True:
                with lock:
                    if next(counter, None) is None or (stop is not None and stop.is_set()):
                        return answers
                sent = time.monotonic()
                response = session.post(
                    f"{url}/v1/risk-scores", json=body, headers=headers, timeout=60
                )
                data = response.json() if response.status_code == 200 else {}
                answers.append(
                    Answer(
                        sent,
                        time.monotonic(),
                        response.status_code,
                        response.headers.get("x-request-id"),
                        data.get("model_version"),
                    )
                )

    with ThreadPoolExecutor(clients) as pool:
        return [answer for answers in pool.map(client, range(clients)) for answer in answers]


def audited_versions(database_url: str) -> dict[str, set[str]]:
    """Return, per request id in the audit log, the model versions of its rows."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(audit_table.c.request_id, audit_table.c.model_version))
            found: dict[str, set[str]] = {}
            for request_id, version in rows:
                found.setdefault(request_id, set()).add(version)
    finally:
        engine.dispose()
    return found


def audit_rows(database_url: str) -> int:
    """Return how many score rows the audit log holds."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_table)).scalar_one())
    finally:
        engine.dispose()


def scraped(url: str, prefix: str) -> float:
    """Return the sum of the samples starting with ``prefix`` in one scrape of ``url/metrics``."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def _run(url: str, key: str, n: int, clients: int, database_url: str) -> dict[str, Any]:
    before = audit_rows(database_url)
    started = time.perf_counter()
    answers = send_scores(url, key, n, clients)
    seconds = time.perf_counter() - started
    ok = sum(a.status == 200 for a in answers)
    return {
        "requests": len(answers),
        "ok": ok,
        "errors": len(answers) - ok,
        "audit_rows_added": audit_rows(database_url) - before,
        "audit_rows_expected": ok * BATCH,
        "seconds": round(seconds, 2),
        "requests_per_second": round(len(answers) / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    from pipeline.replica_stack import ReplicaStackConfig, replicas_down, replicas_up
    from serving.launcher import free_loopback_port

    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    store = train_champion(work / "registry")
    figures: dict[str, Any] = {"requests": args.requests, "clients": args.clients}
    figures["batch"] = BATCH
    with audit_database() as database_url:
        # A limit no client reaches: every request still takes its token from Redis.
        environ = replica_environment(
            work / "service",
            store,
            database_url,
            rate_limit_per_second=100_000,
            rate_limit_burst=100_000,
            metrics_access="open",
        )
        key = create_score_key(environ)
        load_before = os.getloadavg()
        for name, ports in (("one_replica_direct", 1), ("two_replicas_haproxy", 2)):
            config = ReplicaStackConfig(
                home=work / name,
                proxy_port=free_loopback_port(),
                replica_ports=tuple(free_loopback_port() for _ in range(ports)),
            )
            replicas_up(config, environ)
            try:
                # One replica is called past its proxy, as a single service would be.
                url = config.url if ports == 2 else config.replica_url(config.replica_ports[0])
                figures[name] = _run(url, key, args.requests, args.clients, database_url)
                # Requests whose limit a worker decided alone (Redis too slow or away): 0 means
                # every request took its token from Redis.
                figures[name]["rate_limit_fallbacks"] = sum(
                    scraped(config.replica_url(p), "desist_rate_limit_fallbacks_total")
                    for p in config.replica_ports
                )
            finally:
                replicas_down(config)
        figures["load_average_before_after"] = [round(load_before[0], 1), os.getloadavg()[0]]
    one, two = figures["one_replica_direct"], figures["two_replicas_haproxy"]
    figures["ratio_two_to_one"] = round(two["requests_per_second"] / one["requests_per_second"], 2)
    figures["every_200_audited"] = all(
        f["audit_rows_added"] == f["audit_rows_expected"] and f["errors"] == 0 for f in (one, two)
    )
    save("replicas", figures)


if __name__ == "__main__":
    main()
