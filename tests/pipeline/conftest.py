"""Fixtures for training jobs: tiny configs and MLflow stores under tmp paths."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from data.synthetic import SynthConfig
from models.risk import BoostingSettings, ScorecardSettings
from pipeline.config import DatasetConfig, EvaluationConfig, RiskTrainConfig
from pipeline.tracking import Tracker
from pipeline.train_risk import TrainResult, train

POSTGRES_URL = os.environ.get("DESIST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def small_config(**changes: object) -> RiskTrainConfig:
    """A config that trains both families on 4,000 people in a few seconds."""
    base = RiskTrainConfig(
        dataset=DatasetConfig(name="synthetic-test", synthetic=SynthConfig(rows=4_000, seed=3)),
        features=(
            "age",
            "total_sanctions",
            "months_offence_free",
            "offence_category",
            "drug_misuse",
            "unemployed",
            "no_settled_accommodation",
            "procriminal_attitudes",
            "sex",
        ),
        audit_only=("ethnicity",),
        models=(ScorecardSettings(), BoostingSettings(max_iter=40)),
        evaluation=EvaluationConfig(n_bootstrap=30),
    )
    return base.model_copy(update=changes)


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    """An empty embedded store (SQLite + local artifacts) for one test."""
    return Tracker.for_home(tmp_path / "desist-home")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tracker, TrainResult]:
    """One completed training job, shared by the tests that only read it."""
    store = Tracker.for_home(tmp_path_factory.mktemp("trained-home"))
    return store, train(small_config(), tracker=store)


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
