"""A batch run's config, and the checks of its files made before any heavy import."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from data.errors import DatasetFormatError, SourceAdapterError
from pipeline.batch_config import BatchScoreConfig, check_files


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    source = tmp_path / "cases.csv"
    source.write_text("subject_ref\nS1\n")
    return source


def test_a_readable_input_and_a_writable_folder_pass_and_nothing_is_created(
    cases: Path, tmp_path: Path
) -> None:
    output = tmp_path / "new" / "deeper" / "scores.parquet"
    check_files(BatchScoreConfig(input=cases, output=output))
    assert not (tmp_path / "new").exists()


def test_a_missing_input_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    with pytest.raises(DatasetFormatError, match=re.escape(f"{missing}: no such file")):
        check_files(BatchScoreConfig(input=missing, output=tmp_path / "scores.csv"))


def test_a_folder_is_not_an_input(tmp_path: Path) -> None:
    folder = tmp_path / "looks.csv"
    folder.mkdir()
    with pytest.raises(DatasetFormatError, match=re.escape(f"{folder}: not a readable file")):
        check_files(BatchScoreConfig(input=folder, output=tmp_path / "scores.csv"))


def test_spark_executors_check_their_own_input(tmp_path: Path) -> None:
    config = BatchScoreConfig(input=tmp_path / "on-the-cluster.csv", output=tmp_path / "s.csv")
    check_files(config, input_here=False)


def test_an_output_under_a_file_names_the_file(cases: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "report.txt"
    blocker.write_text("not a folder")
    output = blocker / "scores.csv"
    with pytest.raises(DatasetFormatError, match=re.escape(f"{blocker} is not a folder")):
        check_files(BatchScoreConfig(input=cases, output=output))


@pytest.mark.parametrize("name", ["scores.csv", "scores.rejected.csv"])
def test_an_output_that_is_a_folder_is_refused(cases: Path, tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(DatasetFormatError, match=re.escape(f"{tmp_path / name}: is a folder")):
        check_files(BatchScoreConfig(input=cases, output=tmp_path / "scores.csv"))


def test_a_missing_dataset_config_is_named(cases: Path, tmp_path: Path) -> None:
    config = BatchScoreConfig(
        input=cases, output=tmp_path / "s.csv", dataset_config=tmp_path / "absent.toml"
    )
    with pytest.raises(SourceAdapterError, match=re.escape("absent.toml: cannot read config")):
        check_files(config)


def test_suffixes_and_overwrites_are_refused_when_the_config_is_made(
    cases: Path, tmp_path: Path
) -> None:
    with pytest.raises(DatasetFormatError, match=re.escape("unknown file type '.xlsx'")):
        BatchScoreConfig(input=cases, output=tmp_path / "scores.xlsx")
    with pytest.raises(ValueError, match=re.escape("must not overwrite the input")):
        BatchScoreConfig(input=cases, output=cases)
