"""A job's data: loaded through the schema with a digest of its source, and logged to the run."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import mlflow
import pytest

from data.errors import SchemaValidationError
from data.schema import DEFAULT_FEATURES, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from models.contract.tags import RUN_DATASET_SHA256, RUN_ROWS
from pipeline.config import DatasetConfig
from pipeline.datasets import load_job_data, log_job_data
from pipeline.tracking import Tracker

SYNTH = SynthConfig(rows=300, seed=3)


def _columns(schema: str) -> set[str]:
    """The column names in a logged dataset's MLflow schema (JSON)."""
    return {column["name"] for column in json.loads(schema)["mlflow_colspec"]}


def test_synthetic_data_is_named_by_its_generator_settings() -> None:
    data = load_job_data(DatasetConfig(name="synth", synthetic=SYNTH), require=DEFAULT_FEATURES)
    settings = SYNTH.model_dump_json()
    assert len(data.frame) == 300 and data.name == "synth"
    assert data.source == f"data.synthetic.generate_cohort({settings})"
    assert data.sha256 == "sha256:" + hashlib.sha256(settings.encode()).hexdigest()


def test_a_file_is_validated_and_digested(tmp_path: Path) -> None:
    path = tmp_path / "cohort.csv"
    generate_cohort(SYNTH)[0].to_csv(path, index=False)
    data = load_job_data(DatasetConfig(name="file", path=path), require=DEFAULT_FEATURES)
    assert len(data.frame) == 300 and data.source == str(path)
    assert data.sha256 == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_that_breaks_the_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cohort.csv"
    generate_cohort(SYNTH)[0].assign(age=-5).to_csv(path, index=False)
    with pytest.raises(SchemaValidationError, match="age"):
        load_job_data(DatasetConfig(name="bad", path=path), require=DEFAULT_FEATURES)


def test_logging_records_the_features_target_digest_and_rows(tmp_path: Path) -> None:
    data = load_job_data(DatasetConfig(name="synth", synthetic=SYNTH), require=DEFAULT_FEATURES)
    tracker = Tracker.for_home(tmp_path)
    with tracker.activate(), mlflow.start_run(experiment_id=tracker.experiment_id("d")) as run:
        log_job_data(data, ("age", "sex"), TARGET_FIELD, is_file=False)
    logged = tracker.get_run(run.info.run_id)
    assert logged.data.tags[RUN_DATASET_SHA256] == data.sha256
    assert logged.data.tags[RUN_ROWS] == "300"
    (entry,) = logged.inputs.dataset_inputs
    assert entry.dataset.name == "synth"
    assert _columns(entry.dataset.schema) == {"age", "sex", TARGET_FIELD}
    assert "ethnicity" not in _columns(entry.dataset.schema)  # only features and the outcome


def test_a_logged_file_names_its_path_without_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "cohort.csv"
    generate_cohort(SYNTH)[0].to_csv(path, index=False)
    data = load_job_data(DatasetConfig(name="file", path=path), require=DEFAULT_FEATURES)
    tracker = Tracker.for_home(tmp_path / "home")
    with (
        tracker.activate(),
        mlflow.start_run(experiment_id=tracker.experiment_id("d")) as run,
        warnings.catch_warnings(record=True) as seen,
    ):
        warnings.simplefilter("always")
        log_job_data(data, ("age", "sex"), TARGET_FIELD, is_file=True)
    # MLflow's "can be interpreted in multiple ways" reached every user of a data file.
    assert [str(w.message) for w in seen if "dataset source" in str(w.message)] == []
    (entry,) = tracker.get_run(run.info.run_id).inputs.dataset_inputs
    assert str(path) in entry.dataset.source
