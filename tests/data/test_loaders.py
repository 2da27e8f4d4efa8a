from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data.errors import DatasetFormatError, SchemaValidationError
from data.loaders import load_dataset, write_table
from data.schema import TARGET_FIELD
from data.synthetic import SynthConfig, truth_path_for, write_cohort

Cohort = tuple[pd.DataFrame, pd.DataFrame]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_keeps_values_and_types(
    tmp_path: Path, small_cohort: Cohort, suffix: str
) -> None:
    path = tmp_path / f"cohort{suffix}"
    write_table(small_cohort[0], path)
    loaded = load_dataset(path, require=[TARGET_FIELD])
    pd.testing.assert_frame_equal(loaded, small_cohort[0])


def test_csv_ids_that_look_like_numbers_stay_text(tmp_path: Path, small_cohort: Cohort) -> None:
    frame = small_cohort[0].head(3).copy()
    frame["subject_ref"] = ["007", "010", "3"]
    path = tmp_path / "ids.csv"
    write_table(frame, path)
    assert load_dataset(path)["subject_ref"].tolist() == ["007", "010", "3"]


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"\.xlsx"):
        load_dataset(tmp_path / "cohort.xlsx")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="no such file"):
        load_dataset(tmp_path / "absent.csv")


def test_invalid_file_reports_the_path(tmp_path: Path, small_cohort: Cohort) -> None:
    frame = small_cohort[0].head(5).copy()
    frame["age"] = frame["age"].astype("Int64")
    frame.loc[2, "age"] = 300
    path = tmp_path / "bad.csv"
    write_table(frame, path)
    with pytest.raises(SchemaValidationError, match=r"bad\.csv") as info:
        load_dataset(path)
    assert [(v.column, v.row) for v in info.value.violations] == [("age", 3)]


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    unwritable = pd.DataFrame({"x": [object()]})
    with pytest.raises(Exception):  # noqa: B017 - pyarrow raises its own type
        write_table(unwritable, path)
    assert list(tmp_path.iterdir()) == []


def test_write_cohort_writes_cohort_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "c.parquet"
    files = write_cohort(SynthConfig(rows=300, seed=1), out)
    assert files.truth_path == truth_path_for(out) == tmp_path / "c.truth.parquet"
    assert len(load_dataset(out)) == files.rows == 300
    assert "p_reoffend" in pd.read_parquet(files.truth_path).columns
