"""What ``desist score`` is asked to do, and the checks of its files that need no heavy import.

:class:`BatchScoreConfig` is a batch run's config; :func:`check_files` refuses
a run whose input cannot be read or whose outputs cannot be written. Both
import only the standard library, pydantic and :mod:`data.errors` /
:mod:`data.formats`: ``desist score`` runs them before pandas, scikit-learn
and MLflow are imported (5 to 10 s on a shared machine), so that a wrong path,
a bad suffix or an unwritable folder is reported at once, not after the model
is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from data.errors import DatasetFormatError, DesistError, SourceAdapterError
from data.formats import file_format


class ScoreOptionsError(DesistError):
    """The options of a batch run break a rule; the message names the option."""


class BatchScoreConfig(BaseModel):
    """What ``desist score`` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_uri: str | None = Field(
        default=None,
        description="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH; "
        "default: the champion of the config's model (pipeline.batch_model)",
    )
    input: Path = Field(description="CSV or Parquet file of assessments")
    output: Path = Field(description="CSV or Parquet file to write, by extension")
    dataset_config: Path | None = Field(
        default=None, description="TOML config: its [adapter] maps the columns (batch_model)"
    )
    chunk_rows: int = Field(default=100_000, ge=1, le=10_000_000)
    top_reasons: int = Field(default=3, ge=1, le=10)
    allow_unverified: bool = Field(
        default=False, description="score with a never-registered runs:/ model (no digest)"
    )
    threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)

    @model_validator(mode="after")
    def _distinct_files(self) -> Self:
        file_format(self.input)
        file_format(self.output)
        if self.output.resolve() in (self.input.resolve(), self.rejects.resolve()):
            raise ValueError("the output must not overwrite the input or the rejects file")
        if self.rejects.resolve() == self.input.resolve():
            raise ValueError("the rejects file would overwrite the input")
        return self

    @property
    def rejects(self) -> Path:
        """Where rejected rows go: ``<output stem>.rejected.csv`` beside the output."""
        return self.output.with_name(f"{self.output.stem}.rejected.csv")


def check_files(config: BatchScoreConfig, *, input_here: bool = True) -> None:
    """Refuse a run whose input cannot be read or whose outputs cannot be written.

    Parameters
    ----------
    config
        The run (its suffixes are checked when it is made).
    input_here
        Whether this process reads the input (False for a Spark cluster's
        executors, which may see paths this machine does not).

    Raises
    ------
    DatasetFormatError
        If the input is missing, a folder or unreadable; or if the output or
        the rejects file is a folder, or its folder cannot be made or written.
    SourceAdapterError
        If the dataset config is missing or unreadable (as its loader says).
    """
    if input_here:
        _readable(config.input)
    if config.dataset_config is not None and not _is_readable_file(config.dataset_config):
        raise SourceAdapterError(
            str(config.dataset_config), "cannot read config (no such file, or unreadable)"
        )
    for path in (config.output, config.rejects):
        _writable(path)


def _is_readable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.R_OK)


def _readable(path: Path) -> None:
    if not path.exists():
        raise DatasetFormatError(f"{path}: no such file")
    if not _is_readable_file(path):
        raise DatasetFormatError(f"{path}: not a readable file")


def _writable(path: Path) -> None:
    """Refuse ``path`` when it cannot be written, renamed into place, or its folder made."""
    if path.is_dir():
        raise DatasetFormatError(f"{path}: is a folder, not a file to write")
    # The writers make missing folders: the nearest existing one must take them.
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise DatasetFormatError(f"{path}: cannot be written, {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatasetFormatError(f"{path}: cannot be written, no write permission in {folder}")
