from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.pyfunc import PythonModel

from models.contract.artifact import directory_digest
from models.contract.register import logged_model_digest, register_version
from models.contract.tags import VersionTags
from pipeline.tracking import Tracker


class _Constant(PythonModel):
    """The smallest logged model: registration is under test, not prediction."""

    def predict(
        self, context: object, model_input: list[str], params: dict[str, object] | None = None
    ) -> list[float]:
        return [0.5 for _ in model_input]


def test_a_version_is_registered_with_exactly_its_typed_tags(tmp_path: Path) -> None:
    files = tmp_path / "model"
    files.mkdir()
    (files / "MLmodel").write_text("flavors: {}\n")
    (files / "model.skops").write_bytes(b"PK\x03\x04 stand-in")
    tracker = Tracker.for_home(tmp_path / "home")
    with tracker.activate():
        digest = logged_model_digest(files.as_uri())
        tags = VersionTags(
            run_id="r1",
            features=("age",),
            audit_only=("ethnicity",),
            digest=digest,
            trained_at="2026-12-01T22:00:00+00:00",
            estimated_policy_value=0.1,
            estimated_rnr_value=0.05,
        )
        assert register_version(files.as_uri(), "desist-pathways", tags) == "1"
    assert digest == directory_digest(files)
    version = tracker.client().get_model_version("desist-pathways", "1")
    assert version.tags == tags.to_mlflow_tags()
    assert VersionTags.from_mlflow_tags(version.tags) == tags


def test_a_logged_model_registers_linked_to_its_run_and_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    tracker = Tracker.for_home(tmp_path / "home")
    # An experiment of the tracker's: MLflow's default experiment keeps its artifacts in
    # ./mlruns of the working directory, which would put a model in the source tree.
    experiment = tracker.experiment_id("register-test")
    with tracker.activate(), mlflow.start_run(experiment_id=experiment) as run:
        assert run.info.artifact_uri.startswith(tracker.artifact_root or "")
        info = mlflow.pyfunc.log_model(name="model", python_model=_Constant(), pip_requirements=[])
        tags = VersionTags(
            run_id=run.info.run_id,
            features=("age",),
            audit_only=("ethnicity",),
            digest="0" * 64,
            trained_at="2026-12-02T02:00:00+00:00",
        )
        capfd.readouterr()
        first = register_version(info.model_uri, "desist-risk", tags)
        second = register_version(info.model_uri, "desist-risk", tags)
    assert (first, second) == ("1", "2")
    # MLflow's fluent register_model printed two lines per call; the job prints its own summary.
    assert "regist" not in capfd.readouterr().err.lower()
    version = tracker.client().get_model_version("desist-risk", "2")
    assert version.run_id == run.info.run_id
    assert version.source == info.model_uri
