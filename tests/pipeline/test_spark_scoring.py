"""Batch scoring on Spark gives the single-process output, row for row (marker ``team``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from data.errors import DatasetFormatError, SchemaValidationError
from data.schema import ID_FIELD
from data.synthetic import SynthConfig, generate_cohort
from models.contract.errors import ModelLoadError
from models.contract.tags import META_ENGINE, TAG_DIGEST
from pipeline.batch_scoring import BatchScoreConfig, score_file
from pipeline.tracking import Tracker
from pipeline.train_risk import TrainResult
from tests.team_parts import require, spark_problem

pytestmark = pytest.mark.team

Trained = tuple[Tracker, TrainResult]
ROWS = 100_000


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    require(spark_problem())
    from pipeline.spark_session import make_spark_session

    session = make_spark_session("local[2]", app="desist-test")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    """100,000 assessments with rows the checks reject and ids repeated far apart."""
    frame, _ = generate_cohort(SynthConfig(rows=ROWS, seed=71))
    frame = frame.copy()
    frame.loc[[5, 60_000], "age"] = -3  # out of range
    frame.loc[[7, 77_777], "total_sanctions"] = np.nan  # required
    ids = frame[ID_FIELD].astype(object).to_numpy().copy()
    ids[[45_000, 99_998]] = ids[[10, 30_000]]  # repeats across the file
    ids[[200]] = ids[[199]]  # a repeat next to its first
    frame[ID_FIELD] = ids
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        # Several row groups, as a large export has: Spark splits a Parquet file by them.
        frame.to_parquet(path, index=False, row_group_size=20_000)
    return path


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={ID_FIELD: "string"}, keep_default_na=False)
    return pq.read_table(path).to_pandas()


def both(trained: Trained, spark: Any, source: Path, out: Path, **options: Any) -> tuple[Any, Any]:
    from pipeline.spark_scoring import score_file_spark

    tracker, result = trained
    single = BatchScoreConfig(
        model_uri=result.model_uri, input=source, output=out / f"one{source.suffix}", **options
    )
    spread = single.model_copy(update={"output": out / f"spark{source.suffix}"})
    return (
        score_file(single, tracker=tracker),
        score_file_spark(spread, tracker=tracker, session=spark),
    )


def assert_same_files(one: Path, other: Path) -> None:
    left, right = read(one), read(other)
    assert list(left.columns) == list(right.columns)
    assert len(left) == len(right)
    for column in left.columns:
        if column == "risk_probability" or column.endswith("_contribution"):
            np.testing.assert_allclose(left[column], right[column], rtol=0, atol=1e-9)
        else:
            assert left[column].astype(str).tolist() == right[column].astype(str).tolist(), column


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_spark_output_equals_the_single_process_output_row_for_row(
    trained: Trained, spark: Any, cases: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    source = write(cases, tmp_path / f"cases{suffix}")
    one, spread = both(trained, spark, source, tmp_path)

    assert spread.rows_read == one.rows_read == ROWS
    assert (spread.rows_scored, spread.rows_rejected, spread.violations) == (
        one.rows_scored,
        one.rows_rejected,
        one.violations,
    )
    assert one.rows_rejected == 7  # 2 out of range, 2 missing, 3 repeated ids
    assert spread.band_counts == one.band_counts
    assert_same_files(one.output, spread.output)
    assert_same_files(one.rejects, spread.rejects)
    if suffix == ".parquet":
        metadata = pq.read_schema(spread.output).metadata
        assert metadata[TAG_DIGEST.encode()] == one.model.digest.encode()
        assert metadata[META_ENGINE.encode()] == b"spark local[2]"


def test_the_model_is_verified_on_the_driver_before_any_task(
    trained: Trained, spark: Any, cases: pd.DataFrame, tmp_path: Path
) -> None:
    from pipeline.spark_scoring import score_file_spark

    tracker, result = trained
    source = write(cases.head(100), tmp_path / "cases.parquet")
    unknown = f"models:/{result.registered_model}/99"
    config = BatchScoreConfig(model_uri=unknown, input=source, output=tmp_path / "s.parquet")
    with pytest.raises(ModelLoadError):
        score_file_spark(config, tracker=tracker, session=spark)
    assert not (tmp_path / "s.parquet").exists()


def test_a_missing_column_or_file_fails_before_scoring(
    trained: Trained, spark: Any, cases: pd.DataFrame, tmp_path: Path
) -> None:
    from pipeline.spark_scoring import score_file_spark

    tracker, result = trained
    source = write(cases.head(100).drop(columns=["age"]), tmp_path / "cases.csv")
    config = BatchScoreConfig(model_uri=result.model_uri, input=source, output=tmp_path / "s.csv")
    with pytest.raises(SchemaValidationError):
        score_file_spark(config, tracker=tracker, session=spark)
    missing = config.model_copy(update={"input": tmp_path / "nowhere.csv"})
    with pytest.raises(DatasetFormatError):
        score_file_spark(missing, tracker=tracker, session=spark)
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("case", ["no row rejected", "every row rejected"])
def test_files_without_rejects_or_without_scores_match_too(
    trained: Trained, spark: Any, cases: pd.DataFrame, tmp_path: Path, case: str
) -> None:
    frame = cases.iloc[1_000:4_000].copy()
    if case == "every row rejected":
        frame["age"] = -3
    source = write(frame, tmp_path / "cases.parquet")
    one, spread = both(trained, spark, source, tmp_path)
    assert (spread.rows_scored, spread.rows_rejected) == (one.rows_scored, one.rows_rejected)
    assert_same_files(one.output, spread.output)
    assert_same_files(one.rejects, spread.rejects)
