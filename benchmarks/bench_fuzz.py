"""Thousands of schemathesis requests against a live service, counted.

The same driver as ``tests/serving/test_hostile.py`` (``benchmarks.support.fuzzing``),
with many more examples, over real HTTP (uvicorn, uvloop, httptools) on
loopback: every operation of the service's own OpenAPI schema, schema-valid
and schema-breaking requests, with no key, a score key and an admin key.
Rate limits are off (one client sends everything); the audit log (SQLite,
temporary) must hold one row per score returned.

Target (issue 7): 0 server errors across at least 5,000 generated requests,
every response matching the schema.

Run: ``.venv/bin/python -m benchmarks.bench_fuzz [--home DIR] [--examples 300]``.
Results in ``benchmarks/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import schemathesis

from benchmarks.bench_load import audit_count, champion_home, service_settings
from benchmarks.common import save
from benchmarks.support.fuzzing import fuzz
from benchmarks.support.live import LiveService
from serving.commands import create_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, help="DESIST_HOME with a champion to reuse")
    parser.add_argument(
        "--examples", type=int, default=300, help="per operation, generation mode and key"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    scratch = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    home = champion_home(args.home, scratch)
    settings = service_settings(home, scratch, unverified_per_second=0)
    keys = {
        "no key": None,
        "score key": create_key("fuzz-score", "score", settings=settings),
        "admin key": create_key("fuzz-admin", "admin", settings=settings),
    }
    with LiveService(settings, scratch / "service.log") as live:
        live.start()
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
    rows = audit_count(settings.resolved_database_url())
    shutil.rmtree(scratch, ignore_errors=True)
    counts = report.as_dict()
    save(
        "fuzz",
        {
            "load_average_at_start": load_at_start,
            "examples_per_operation_mode_and_key": args.examples,
            "seed": args.seed,
            "seconds": round(seconds, 1),
            **counts,
            "audit": {
                "rows": rows,
                "scores_returned": report.scores_returned,
                "equal": rows == report.scores_returned,
            },
            "latency_by_route": _latencies(log_text),
            "service_log": {
                "lines": log_text.count("\n"),
                "error_lines": log_text.count('"level": "error"'),
                "tracebacks": log_text.count("Traceback"),
            },
            "targets": {
                "at_least_10000_requests": report.requests >= 10_000,
                "no_server_errors": not report.server_errors,
                "every_response_matches_the_schema": not report.failures,
                "audit_rows_equal_scores_returned": rows == report.scores_returned,
            },
        },
    )


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
