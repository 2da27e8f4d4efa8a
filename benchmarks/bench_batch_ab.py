"""One 1,000-assessment risk request over HTTP: two source trees served side by side, A/B.

Each tree (say main and a branch) runs its own ``desist serve`` on loopback,
one worker, against the same registry (``--home``, with a
``desist-risk@champion``), each with its own audit database; the rate limit
is off as in :mod:`benchmarks.bench_serving`, everything else on. Requests
alternate between the two, so both see the same machine load; each round
sends one request with httpx (as ``bench_serving`` times its batch) and one on
a bare keep-alive connection (:class:`benchmarks.bench_serving.Connection`),
and checks that the trees answer the same bytes (but for the request id).

Run: ``.venv/bin/python -m benchmarks.bench_batch_ab --home DIR --trees REF NEW``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.bench_serving import Connection, assessments, free_port, http_request, wait_ready
from benchmarks.common import save
from serving.commands import create_key
from serving.settings import Settings


def start(tree: Path, tracking: str) -> tuple[subprocess.Popen[bytes], int, str]:
    """Start ``desist serve`` from ``tree``'s sources; return it, its port and a key."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-batch-ab-"))
    settings = Settings(
        home=scratch / "service",
        tracking_uri=tracking,
        database_url=f"sqlite:///{scratch / 'audit.db'}",
    )
    key = create_key("benchmark", "score", settings=settings)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DESIST_HOME": str(settings.home),
        "DESIST_TRACKING_URI": tracking,
        "DESIST_DATABASE_URL": settings.resolved_database_url(),
        "DESIST_RATE_LIMIT_PER_SECOND": "0",  # one client at full speed, as in bench_serving
    }
    server = subprocess.Popen(
        [sys.executable, "-c", f"from serving.commands import serve; serve('127.0.0.1', {port})"],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=(scratch / "service.log").open("w"),
    )
    return server, port, key


@contextmanager
def served_trees(
    home: Path, trees: list[Path]
) -> Iterator[list[tuple[subprocess.Popen[bytes], int, str]]]:
    """Serve each of ``trees`` (:func:`start`) from ``home``'s registry until the block ends.

    Yields each server, its port and a key, once every one is ready.
    """
    tracking = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    started = [start(tree, tracking) for tree in trees]
    try:
        for server, port, _ in started:
            wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        yield started
    finally:
        for server, _, _ in started:
            server.terminate()
        for server, _, _ in started:
            server.wait(timeout=20)


def comparable(response: httpx.Response) -> str:
    """Return an answer's JSON but for its request id, the one field two trees must differ in."""
    assert response.status_code == 200, response.text[:300]
    answer: dict[str, Any] = response.json()
    answer.pop("request_id")
    return json.dumps(answer, sort_keys=True)


def figures(ms: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(ms, 50)), 2),
        "min": round(min(ms), 2),
        "max": round(max(ms), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="DESIST_HOME with a champion")
    parser.add_argument("--trees", type=Path, nargs=2, required=True, help="reference, new")
    parser.add_argument("--rounds", type=int, default=40, help="timed rounds (after 5 warm-up)")
    parser.add_argument("--name", default="batch_ab", help="results file name")
    args = parser.parse_args()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    trees = [tree.resolve() for tree in args.trees]
    body = json.dumps({"assessments": assessments(1_000)}).encode()
    timings: dict[str, dict[str, list[float]]] = {str(t): {"httpx": [], "bare": []} for t in trees}
    answers: set[str] = set()
    with served_trees(args.home, trees) as started:
        loop = asyncio.new_event_loop()
        clients = [httpx.Client(timeout=60) for _ in trees]
        bare = []
        for _, port, key in started:
            headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
            request = http_request("/v1/risk-scores", body, {**headers, "Connection": "keep-alive"})
            bare.append((Connection(port, request), headers))
        for round_ in range(args.rounds + 5):
            for tree, client, (_, port, _), (connection, headers) in zip(
                trees, clients, started, bare, strict=True
            ):
                begun = time.perf_counter()
                response = client.post(
                    f"http://127.0.0.1:{port}/v1/risk-scores", content=body, headers=headers
                )
                via_httpx = time.perf_counter() - begun
                answers.add(comparable(response))
                begun = time.perf_counter()
                assert loop.run_until_complete(connection.send()) == 200
                via_bare = time.perf_counter() - begun
                if round_ >= 5:
                    timings[str(tree)]["httpx"].append(via_httpx * 1000)
                    timings[str(tree)]["bare"].append(via_bare * 1000)
    reference, new = (timings[str(t)] for t in trees)
    save(
        args.name,
        {
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "trees": {"reference": str(trees[0]), "new": str(trees[1])},
            "rounds": args.rounds,
            "same_answers": len(answers) == 1,
            "batch_1000_ms": {
                "reference": {kind: figures(ms) for kind, ms in reference.items()},
                "new": {kind: figures(ms) for kind, ms in new.items()},
            },
            "p50_ratio_new_to_reference": {
                kind: round(float(np.median(new[kind]) / np.median(reference[kind])), 3)
                for kind in reference
            },
            "targets": {"new_batch_1000_p50_at_most_20ms": float(np.median(new["httpx"])) <= 20},
        },
    )


if __name__ == "__main__":
    main()
