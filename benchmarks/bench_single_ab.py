"""One-assessment requests at 8 clients: two source trees served side by side, A/B.

As :mod:`benchmarks.bench_batch_ab`: each tree (say main and a branch) runs its
own ``desist serve`` on loopback, one worker, against the same registry
(``--home``, with both champions), each with its own audit database in a
temporary folder; the per-client rate limit is off as in
:mod:`benchmarks.bench_serving`, everything else on. This host's speed changes
by up to 1.6x within a minute, so the trees are never timed minutes apart:
short closed-loop phases (``--seconds``, 3 s) at ``--clients`` (8) alternate
between them, the order flipped every round (reference first, then new first),
so that both see the same machine in the same minutes.

Per route (``risk``: ``POST /v1/risk-scores``, ``pathway``:
``POST /v1/pathway-recommendations``, one assessment each) and tree it reports
the median throughput over the rounds, the ratio of the medians, the median of
each round's paired ratio (the two phases of one round are seconds apart), and
the service process's CPU time per answered request (user + system, from
``/proc``, read before and after each phase): the figure a GIL-bound service
spends, which the host's speed moves less than throughput. Before timing it
checks that both trees answer the same bytes but for the request id.

Run: ``.venv/bin/python -m benchmarks.bench_single_ab --home DIR --trees REF NEW
[--rounds 12] [--seconds 3] [--routes risk pathway]``, timed under
``flock /tmp/bench.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.bench_batch_ab import comparable, served_trees
from benchmarks.bench_serving import Connection, assessments, closed_loop, http_request
from benchmarks.common import save

ROUTES = {"risk": "/v1/risk-scores", "pathway": "/v1/pathway-recommendations"}
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time of process ``pid`` and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def same_answers(ports: list[int], keys: list[str], path: str, body: bytes) -> bool:
    """Whether every tree answers ``body`` on ``path`` with the same bytes but the request id."""
    answers = set()
    for port, key in zip(ports, keys, strict=True):
        headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
        answers.add(
            comparable(httpx.post(f"http://127.0.0.1:{port}{path}", content=body, headers=headers))
        )
    return len(answers) == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="DESIST_HOME with both champions")
    parser.add_argument("--trees", type=Path, nargs=2, required=True, help="reference, new")
    parser.add_argument("--rounds", type=int, default=12, help="phases per tree and route")
    parser.add_argument("--seconds", type=float, default=3.0, help="per phase")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop concurrency")
    parser.add_argument("--routes", nargs="+", choices=sorted(ROUTES), default=["risk", "pathway"])
    parser.add_argument("--name", default="single_ab", help="results file name")
    args = parser.parse_args()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    trees = [tree.resolve() for tree in args.trees]
    body = json.dumps({"assessments": assessments(1)}).encode()
    results: dict[str, Any] = {}
    with served_trees(args.home, trees) as started:
        ports = [port for _, port, _ in started]
        keys = [key for _, _, key in started]
        for route in args.routes:
            path = ROUTES[route]
            same = same_answers(ports, keys, path, body)
            requests = [
                http_request(
                    path,
                    body,
                    {
                        "Authorization": f"Bearer {key}",
                        "content-type": "application/json",
                        "Connection": "keep-alive",
                    },
                )
                for key in keys
            ]
            rps: list[list[float]] = [[], []]
            cpu_ms: list[list[float]] = [[], []]
            errors = [0, 0]
            for round_ in range(args.rounds):
                order = (0, 1) if round_ % 2 == 0 else (1, 0)
                for which in order:
                    pid = started[which][0].pid
                    before = cpu_seconds(pid)
                    answered_before = Connection.answered[ports[which]]
                    phase = asyncio.run(
                        closed_loop(ports[which], requests[which], args.clients, args.seconds)
                    )
                    spent = cpu_seconds(pid) - before
                    answered = Connection.answered[ports[which]] - answered_before
                    rps[which].append(phase["throughput_rps"])
                    cpu_ms[which].append(spent / max(answered, 1) * 1000)
                    errors[which] += phase["errors"]
                print(
                    route,
                    round_,
                    f"reference {rps[0][-1]:.0f}/s, new {rps[1][-1]:.0f}/s",
                    flush=True,
                )
            reference, new = (np.asarray(r) for r in rps)
            results[route] = {
                "path": path,
                "same_answers": same,
                "errors": {"reference": errors[0], "new": errors[1]},
                "throughput_rps": {
                    "reference": {"median": round(float(np.median(reference)), 1)},
                    "new": {"median": round(float(np.median(new)), 1)},
                },
                "throughput_rps_per_round": {
                    "reference": [round(x, 1) for x in rps[0]],
                    "new": [round(x, 1) for x in rps[1]],
                },
                "median_ratio_new_to_reference": round(
                    float(np.median(new) / np.median(reference)), 3
                ),
                "median_paired_ratio_new_to_reference": round(float(np.median(new / reference)), 3),
                "cpu_ms_per_request": {
                    "reference": round(float(np.median(cpu_ms[0])), 3),
                    "new": round(float(np.median(cpu_ms[1])), 3),
                    "median_paired_ratio_new_to_reference": round(
                        float(np.median(np.asarray(cpu_ms[1]) / np.asarray(cpu_ms[0]))), 3
                    ),
                },
            }
            print(route, json.dumps(results[route]), flush=True)
    save(
        args.name,
        {
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "trees": {"reference": str(trees[0]), "new": str(trees[1])},
            "rounds": args.rounds,
            "seconds_per_phase": args.seconds,
            "clients": args.clients,
            "routes": results,
        },
    )


if __name__ == "__main__":
    main()
