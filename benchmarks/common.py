"""Shared helpers of the benchmark scripts: their command line, timing and saving figures."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def home_parser(description: str | None, home_help: str) -> argparse.ArgumentParser:
    """Return a benchmark's argument parser, with ``--home`` (a DESIST_HOME to reuse).

    Without ``--home`` a benchmark trains its own champions into a temporary home.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--home", type=Path, help=home_help)
    return parser


def best_of(repeats: int, action: Callable[[], object]) -> float:
    """Return the fastest of ``repeats`` wall-clock timings of ``action``, in seconds.

    The minimum is the figure least disturbed by other work on a shared machine.
    """
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def save(name: str, figures: dict[str, Any]) -> Path:
    """Print ``figures`` and write them to ``benchmarks/results/<name>.json``."""
    record = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **figures,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return path
