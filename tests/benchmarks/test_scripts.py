"""Every benchmark script still imports: a renamed function broke one silently before."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted(Path(__file__).parents[2].joinpath("benchmarks").glob("bench_*.py"))
#: Packages of the optional `team` extra, which `make test` does not install.
OPTIONAL = {"pyspark"}


@pytest.mark.parametrize("script", BENCHMARKS, ids=[path.stem for path in BENCHMARKS])
def test_the_benchmark_imports_and_has_a_main(script: Path) -> None:
    try:
        module = importlib.import_module(f"benchmarks.{script.stem}")
    except ModuleNotFoundError as err:
        if err.name in OPTIONAL:
            pytest.skip(f"{script.stem} needs {err.name} (the team extra)")
        raise
    assert callable(module.main)
