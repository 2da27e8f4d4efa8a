"""Fixtures shared by every test package: seeded cohorts and a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

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
