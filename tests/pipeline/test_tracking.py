"""The tracking store: embedded under a home folder, failures named without credentials."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from pipeline.tracking import (
    MODEL_PACKAGES,
    Tracker,
    TrackingStoreError,
    desist_home,
    model_requirements,
)


def test_the_embedded_store_lives_under_its_home(tmp_path: Path) -> None:
    tracker = Tracker.for_home(tmp_path / "home")
    assert tracker.tracking_uri == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert tracker.artifact_root == (tmp_path / "home" / "mlartifacts").as_uri()
    assert (tmp_path / "home").is_dir()


def test_the_environment_chooses_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert Tracker.from_environment() == Tracker("http://mlflow.example:5000")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DESIST_HOME", str(tmp_path))
    assert desist_home() == tmp_path.resolve()
    assert Tracker.from_environment() == Tracker.for_home(tmp_path.resolve())


def test_an_experiment_is_created_once(tmp_path: Path) -> None:
    tracker = Tracker.for_home(tmp_path)
    first = tracker.experiment_id("jobs")
    assert tracker.experiment_id("jobs") == first
    location = tracker.client().get_experiment(first).artifact_location
    assert location == f"{tracker.artifact_root}/jobs"


def test_a_store_failure_is_named_without_its_password() -> None:
    tracker = Tracker("postgresql://desist:s3cret@db:5432/mlflow")
    with pytest.raises(TrackingStoreError) as caught, tracker.reporting_failures():
        raise MlflowException("connection to postgresql://desist:s3cret@db refused\ndetail")
    message = str(caught.value)
    assert "s3cret" not in message and "desist:***@db" in message
    assert message.endswith("refused") and isinstance(caught.value.__cause__, MlflowException)


def test_activation_is_undone_after_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = Tracker.for_home(tmp_path)
    with tracker.activate():
        assert mlflow.get_tracking_uri() == tracker.tracking_uri
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri() != tracker.tracking_uri


def test_requirements_pin_every_model_package() -> None:
    pinned = model_requirements()
    assert [p.split("==")[0] for p in pinned] == list(MODEL_PACKAGES)
    assert any(p.startswith("scikit-learn==") for p in pinned)


def test_the_ui_command_fits_the_store(tmp_path: Path) -> None:
    assert Tracker("https://mlflow.example").ui_command() == "open https://mlflow.example"
    assert "--backend-store-uri" in Tracker.for_home(tmp_path).ui_command()
