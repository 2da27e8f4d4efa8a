"""Which file formats datasets come in, by extension (no pandas: the command line checks early).

:func:`file_format` is the one place a path's extension is read as CSV or
Parquet; :mod:`data.loaders` and batch scoring use it, and ``desist score``
calls it before the heavy imports so that a wrong suffix is reported at once.
"""

from __future__ import annotations

from pathlib import Path

from data.errors import DatasetFormatError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def file_format(path: Path) -> str:
    """Return ``"csv"`` or ``"parquet"`` for ``path``'s extension.

    Raises
    ------
    DatasetFormatError
        For any other extension.
    """
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError as err:
        raise DatasetFormatError(
            f"{path}: unknown file type {path.suffix!r}; use .csv or .parquet"
        ) from err
