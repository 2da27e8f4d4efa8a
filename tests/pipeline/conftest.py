"""Fixtures for training jobs: tiny configs and MLflow stores under tmp paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.support.configs import small_config  # test_registry.py still imports it here
from pipeline.tracking import Tracker
from pipeline.train_risk import TrainResult, train
from tests.support.shared import built_once


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    """An empty embedded store (SQLite + local artifacts) for one test."""
    return Tracker.for_home(tmp_path / "desist-home")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tracker, TrainResult]:
    """One completed training job, shared by the tests that only read it (once per run)."""

    def build(home: Path) -> tuple[Tracker, TrainResult]:
        store = Tracker.for_home(home)
        return store, train(small_config(), tracker=store)

    return built_once(tmp_path_factory, "trained-home", build)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``DESIST_HOME``, with no store or database URL in the environment to override it."""
    monkeypatch.setenv("DESIST_HOME", str(tmp_path / "home"))
    for variable in ("MLFLOW_TRACKING_URI", "DESIST_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "home"
