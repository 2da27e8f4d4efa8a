"""Read and write datasets (CSV or Parquet, chosen by file extension).

:func:`load_dataset` is the only door through which a file reaches training:
it always validates against the schema, so a file that fails never gets
further.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from data.errors import DatasetFormatError
from data.formats import FORMATS, file_format
from data.schema import ID_FIELD
from data.validation import validate_frame

# file_format lives in data.formats (importable without pandas); it is still imported from here.
__all__ = ["FORMATS", "file_format", "load_dataset", "read_table", "write_table"]


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file as it is, without validation.

    Raises
    ------
    DatasetFormatError
        If the file does not exist or cannot be parsed.
    """
    kind = file_format(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: no such file")
    try:
        if kind == "csv":
            # Identifiers stay text even when they look like numbers.
            return pd.read_csv(path, dtype={ID_FIELD: "string"}, low_memory=False)
        return pd.read_parquet(path)
    except (ValueError, OSError) as err:
        raise DatasetFormatError(f"{path}: cannot be read as {kind}") from err


def load_dataset(path: Path, *, require: Iterable[str] = ()) -> pd.DataFrame:
    """Read a dataset file and validate it against the schema.

    Parameters
    ----------
    path
        A ``.csv`` or ``.parquet`` file with schema column names.
    require
        Columns that must be present besides the schema's required fields.

    Returns
    -------
    pandas.DataFrame
        The validated table with canonical types.

    Raises
    ------
    SchemaValidationError
        Listing every violation (column, row, reason).
    DatasetFormatError
        If the file cannot be read.
    """
    return validate_frame(read_table(path), require=require, source=str(path))


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV or Parquet, by ``path``'s extension.

    The file is written beside its destination and renamed into place, so a
    failure never leaves a half-written dataset behind.
    """
    kind = file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        if kind == "csv":
            frame.to_csv(partial, index=False)
        else:
            frame.to_parquet(partial, index=False)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
