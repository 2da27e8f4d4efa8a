"""Thousands of schemathesis requests against a live service, counted.

The same driver as ``tests/serving/test_hostile.py`` (``benchmarks.support.fuzzing``),
with many more examples, over real HTTP (uvicorn, uvloop, httptools) on
loopback: every operation of the service's own OpenAPI schema (risk scores,
pathway recommendations, decisions, outcomes, models and their cards, admin,
health, readiness, metrics), schema-valid and schema-breaking requests, with
no key, a score key, an admin key and an outcomes key, with both a risk and a
pathways champion served. Rate limits are off (one client sends everything);
each audit table (SQLite, temporary) must hold one row per score,
recommendation, decision and outcome answered.

Target (issue 16, item 10): at least 10,000 generated requests, 0 answered
5xx, every response matching the schema, audit rows equal to what was answered.

Run: ``.venv/bin/python -m benchmarks.bench_fuzz [--home DIR] [--examples 200]``
(without ``--home``, small seeded champions of both models are trained first,
about a minute). Results in ``benchmarks/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import schemathesis

from benchmarks.bench_load import audit_count, service_settings
from benchmarks.common import save
from benchmarks.support.fuzzing import FuzzReport, fuzz
from benchmarks.support.live import LiveService
from benchmarks.support.registry import train_small_champions
from serving.commands import create_key
from serving.database import (
    audit_table,
    decision_audit_table,
    outcome_audit_table,
    recommendation_audit_table,
)
from serving.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--home", type=Path, help="DESIST_HOME with a risk and a pathways champion to reuse"
    )
    parser.add_argument(
        "--examples", type=int, default=200, help="per operation, generation mode and key"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    scratch = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    settings = two_champion_settings(args.home, scratch)
    keys = {
        "no key": None,
        "score key": create_key("fuzz-score", "score", settings=settings),
        "admin key": create_key("fuzz-admin", "admin", settings=settings),
        "outcomes key": create_key("fuzz-outcomes", "outcomes", settings=settings),
    }
    with LiveService(settings, scratch / "service.log") as live:
        live.start()
        served = _models_served(live.url, keys["admin key"])
        schema = schemathesis.openapi.from_url(
            f"{live.url}/openapi.json", headers={"Authorization": f"Bearer {keys['score key']}"}
        )
        started = time.perf_counter()
        report = fuzz(
            schema, keys, examples=args.examples, random_seed=args.seed, base_url=live.url
        )
        seconds = time.perf_counter() - started
        live.stop()
    log_text = (scratch / "service.log").read_text()
    audit = _audit(settings.resolved_database_url(), report)
    shutil.rmtree(scratch, ignore_errors=True)
    counts = report.as_dict()
    save(
        "fuzz",
        {
            "load_average_at_start": load_at_start,
            "examples_per_operation_mode_and_key": args.examples,
            "seed": args.seed,
            "models_served": served,
            "seconds": round(seconds, 1),
            **counts,
            "audit": audit,
            "latency_by_route": _latencies(log_text),
            "service_log": {
                "lines": log_text.count("\n"),
                "error_lines": log_text.count('"level": "error"'),
                "tracebacks": log_text.count("Traceback"),
            },
            "targets": {
                "at_least_10000_requests": report.requests >= 10_000,
                "both_models_served": sorted(kind for kind, _ in served) == ["pathways", "risk"],
                "no_server_errors": not report.server_errors,
                "every_response_matches_the_schema": not report.failures,
                "audit_rows_equal_answers": all(table["equal"] for table in audit.values()),
            },
        },
    )


def two_champion_settings(given: Path | None, scratch: Path) -> Settings:
    """Settings of a service of both champions: ``given``'s, or small ones trained anew."""
    if given is not None:
        home = given.resolve()
    else:
        home = train_small_champions(scratch / "home", pathways=True).home
    return service_settings(home, scratch, unverified_per_second=0)


def _models_served(url: str, admin_key: str | None) -> list[tuple[str, str]]:
    """Return (kind, name@version) of each model the service says it serves."""
    answer = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {admin_key}"})
    answer.raise_for_status()
    return [(m["kind"], f"{m['name']}@{m['version']}") for m in answer.json()["models"]]


def _audit(url: str, report: FuzzReport) -> dict[str, dict[str, Any]]:
    """Per audit table: its rows, what the run was answered, and whether they are equal."""
    answered = {
        "scores": (audit_table, report.scores_returned),
        "recommendations": (recommendation_audit_table, report.recommendations_returned),
        "decisions": (decision_audit_table, report.decisions_recorded),
        "outcomes": (outcome_audit_table, report.outcomes_recorded),
    }
    audit = {}
    for name, (table, count) in answered.items():
        rows = audit_count(url, table)
        audit[name] = {"rows": rows, "answered": count, "equal": rows == count}
    return audit


def _latencies(log_text: str) -> dict[str, dict[str, float]]:
    """Per route, from the service's own request lines: count, p99 and max latency (ms)."""
    by_route: dict[str, list[float]] = {}
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "latency_ms" in record:
            by_route.setdefault(str(record.get("route")), []).append(float(record["latency_ms"]))
    summary = {}
    for route, values in sorted(by_route.items()):
        values.sort()
        summary[route] = {
            "count": len(values),
            "p99_ms": values[min(len(values) - 1, int(0.99 * len(values)))],
            "max_ms": values[-1],
            "over_1_s": sum(v > 1000 for v in values),
        }
    return summary


if __name__ == "__main__":
    main()
