"""Fixtures shared by every test package: seeded cohorts and a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

# Before anything imports MLflow: tests run offline.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Tests share machines with other work: one native thread each, never oversubscribed.
# The variables reach subprocesses (a served app); the limit covers pools already loaded.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("DESIST_THREADS", "1")

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from data.synthetic import SynthConfig, generate_cohort

threadpool_limits(limits=1)


@pytest.fixture(scope="session")
def small_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """2,000 people: enough for mechanics, cheap enough for every test."""
    return generate_cohort(SynthConfig(rows=2_000, seed=11))


@pytest.fixture(scope="session")
def large_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """200,000 people under practice referrals, for statistical checks (about 1 s)."""
    return generate_cohort(SynthConfig(rows=200_000, seed=12))


@pytest.fixture(scope="session")
def randomised_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """400,000 people with randomised referrals: a trial the generator can run."""
    return generate_cohort(SynthConfig(rows=400_000, seed=13, referrals="randomised"))


POSTGRES_URL = os.environ.get("DESIST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def _postgres_available() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    try:
        with psycopg.connect(f"{POSTGRES_URL}/postgres", connect_timeout=3):
            return None
    except psycopg.OperationalError as err:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {err}".splitlines()[0]


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards.

    Skips when PostgreSQL is unreachable, unless ``DESIST_REQUIRE_POSTGRES=1``
    (CI), where it fails instead.
    """
    problem = _postgres_available()
    if problem is not None:
        if os.environ.get("DESIST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"DESIST_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    import psycopg

    name = f"desist_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: What MLflow writes where no store was given: run state that must never land in the tree.
STRAY_RUN_STATE = ("mlruns", "mlartifacts", "mlflow.db")


@pytest.fixture(scope="session", autouse=True)
def no_run_state_in_the_tree(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the run if a test left MLflow run state in the repository or the working directory.

    Trained artifacts and run state go to MLflow under a temporary home, never into the
    source tree; a test that forgets to point MLflow somewhere writes ``./mlruns``.
    """
    places = {request.config.rootpath, Path.cwd()}

    def present() -> set[Path]:
        return {
            place / name for place in places for name in STRAY_RUN_STATE if (place / name).exists()
        }

    before = present()
    yield
    stray = sorted(str(path) for path in present() - before)
    assert not stray, f"tests wrote MLflow run state into the tree: {stray}"
