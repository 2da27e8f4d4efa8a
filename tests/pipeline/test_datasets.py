"""A job's data: loaded through the schema with a digest of its source, and logged to the run."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.digest_utils import compute_pandas_digest
from mlflow.data.pandas_dataset import from_pandas
from mlflow.exceptions import MlflowException
from mlflow.types import Schema
from mlflow.types.utils import _infer_schema

from data.errors import SchemaValidationError
from data.schema import DEFAULT_FEATURES, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from models.contract.tags import RUN_DATASET_SHA256, RUN_ROWS
from models.encoding import to_model_input
from pipeline.config import DatasetConfig
from pipeline.datasets import _JobDataset, load_job_data, log_job_data, schema_rows
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


def _mixed_frame() -> pd.DataFrame:
    """Columns of every kind MLflow types differently, with and without missing values."""
    return pd.DataFrame(
        {
            "count": np.arange(8, dtype=np.int64),
            "score": [0.5, np.nan, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7],
            "flag": [True, False] * 4,
            "text": ["a", "b", None, "a", "c", "b", "a", "a"],
            "whole_text": ["x", "y"] * 4,
            "level": pd.Categorical(["low", "high", "low", np.nan, "low", "high", "low", "low"]),
            "string": pd.array(["p", "q", "p", pd.NA, "q", "p", "p", "q"], dtype="string"),
            "ints_as_objects": pd.Series([1, 2, 3, 1, 2, 3, 1, 2], dtype=object),
        }
    )


def _schema(frame: pd.DataFrame) -> Schema | None:
    """MLflow's schema of ``frame``; None where MLflow finds none (as a dataset records it)."""
    try:
        return _infer_schema(frame)
    except MlflowException:
        return None


# MLflow hints, for any integer column, that integers cannot be missing: the frames mean it.
@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer column")
def test_equal_values_of_other_types_count_as_mlflow_counts_them() -> None:
    # 1 and True, "a" and numpy's "a" are equal but of two types: MLflow infers no schema
    # for the first column and does not hash the second as a string column.
    frame = _mixed_frame().assign(
        one_and_true=pd.Series([1, True, 1, 1, 1, 1, 1, 1], dtype=object),
        equal_text=pd.Series(["a", "b", np.str_("a"), "a", "b", "a", "a", "b"]),
    )
    assert _schema(frame) is None and _schema(schema_rows(frame)) is None
    assert _schema(schema_rows(frame.drop(columns="one_and_true"))) == _schema(
        frame.drop(columns="one_and_true")
    )
    assert _JobDataset(frame, CodeDatasetSource({})).digest == compute_pandas_digest(frame)


# MLflow hints, for any integer column, that integers cannot be missing: the frames mean it.
@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer column")
@pytest.mark.parametrize("source", ["cohort", "mixed"])
def test_the_schema_rows_give_the_schema_of_the_whole_frame(source: str) -> None:
    if source == "cohort":
        data = load_job_data(
            DatasetConfig(name="synth", synthetic=SynthConfig(rows=3000, seed=5)),
            require=DEFAULT_FEATURES,
        )
        frame = to_model_input(data.frame, DEFAULT_FEATURES)
    else:
        frame = _mixed_frame()
    rows = schema_rows(frame)
    assert len(rows) < len(frame)
    assert _infer_schema(rows) == _infer_schema(frame)
    source = CodeDatasetSource({})
    assert _JobDataset(frame, source).digest == compute_pandas_digest(frame)
    # Every column is required or optional as in the whole frame: the test can fail.
    assert _infer_schema(frame.dropna()) != _infer_schema(frame)


def test_the_logged_dataset_has_mlflows_own_digest_and_schema(tmp_path: Path) -> None:
    data = load_job_data(DatasetConfig(name="synth", synthetic=SYNTH), require=DEFAULT_FEATURES)
    tracker = Tracker.for_home(tmp_path)
    with tracker.activate(), mlflow.start_run(experiment_id=tracker.experiment_id("d")) as run:
        log_job_data(data, DEFAULT_FEATURES, TARGET_FIELD, is_file=False)
    (entry,) = tracker.get_run(run.info.run_id).inputs.dataset_inputs
    logged = to_model_input(data.frame, DEFAULT_FEATURES).assign(
        **{TARGET_FIELD: data.frame[TARGET_FIELD].to_numpy(dtype=np.float64)}
    )
    plain = from_pandas(logged, source=CodeDatasetSource({}), targets=TARGET_FIELD)
    assert entry.dataset.digest == plain.digest
    assert json.loads(entry.dataset.schema) == {"mlflow_colspec": plain.schema.to_dict()}
