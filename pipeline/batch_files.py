"""The files of a batch run: the input read in chunks, the outputs written whole or not at all.

The input is a CSV file (pandas ``read_csv`` chunks) or a Parquet file (record
batches), so memory follows the chunk size, not the file size. The scores file
and the rejects file are written beside their destination and renamed into
place together only when the run succeeds (:class:`Outputs`); otherwise both
are removed and an existing file of the same name is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from data.errors import DatasetFormatError, Violation
from data.loaders import file_format


def open_chunks(
    path: Path, chunk_rows: int, columns: frozenset[str] | None, id_column: str
) -> tuple[int | None, Iterator[pd.DataFrame]]:
    """Open the input: its row count when known (Parquet), and its chunks of ``chunk_rows``.

    Only ``columns`` are read, when given.

    Raises
    ------
    DatasetFormatError
        If the file is missing or cannot be parsed (naming the rows reached),
        here or while iterating.
    """
    if not path.is_file():
        raise DatasetFormatError(f"{path}: no such file")
    if file_format(path) == "csv":
        return None, _csv_chunks(path, chunk_rows, columns, id_column)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as err:
        raise DatasetFormatError(f"{path}: cannot be read as parquet ({err})") from err
    return parquet.metadata.num_rows, _parquet_chunks(path, parquet, chunk_rows, columns)


def _csv_chunks(
    path: Path, chunk_rows: int, columns: frozenset[str] | None, id_column: str
) -> Iterator[pd.DataFrame]:
    rows = 0
    try:
        reader = pd.read_csv(
            path,
            # Identifiers stay text even when they look like numbers.
            dtype={id_column: "string"},
            usecols=None if columns is None else (lambda name: name in columns),
            chunksize=chunk_rows,
        )
        with reader:
            for chunk in reader:
                rows += len(chunk)
                yield chunk
    except (ValueError, OSError) as err:
        raise DatasetFormatError(
            f"{path}: cannot be read as csv after data row {rows:,} ({err})"
        ) from err


def _parquet_chunks(
    path: Path, parquet: pq.ParquetFile, chunk_rows: int, columns: frozenset[str] | None
) -> Iterator[pd.DataFrame]:
    names = parquet.schema_arrow.names
    wanted = names if columns is None else [n for n in names if n in columns]
    rows = 0
    try:
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=wanted):
            rows += batch.num_rows
            yield batch.to_pandas()
    except (OSError, pa.ArrowException) as err:
        raise DatasetFormatError(
            f"{path}: cannot be read as parquet after data row {rows:,} ({err})"
        ) from err


class TableSink:
    """Arrow tables appended to a CSV or Parquet file that appears only on ``commit``."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: pq.ParquetWriter | pa_csv.CSVWriter
        if file_format(path) == "parquet":
            self._writer = pq.ParquetWriter(self.partial, schema)
        else:
            options = pa_csv.WriteOptions(quoting_style="needed")
            self._writer = pa_csv.CSVWriter(self.partial, schema, write_options=options)

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows (an empty table writes nothing)."""
        if table.num_rows:
            self._writer.write_table(table)

    def commit(self) -> None:
        """Close the file and give it its name, replacing any file of that name."""
        self._writer.close()
        self.partial.replace(self.path)

    def discard(self) -> None:
        """Close and remove the partial file; a file of the final name is left as it was."""
        self._writer.close()
        self.partial.unlink(missing_ok=True)


class Outputs:
    """The scores file and the rejects file, both committed or both discarded."""

    def __init__(
        self, output: Path, scores: pa.Schema, rejects_path: Path, rejects: pa.Schema
    ) -> None:
        self.scores = TableSink(output, scores)
        try:
            self.rejects = TableSink(rejects_path, rejects)
        except BaseException:
            self.scores.discard()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.rejects.commit()
            self.scores.commit()
        else:
            self.rejects.discard()
            self.scores.discard()


def rejects_schema_for(id_column: str) -> pa.Schema:
    """Return the rejects file's columns: row, the source's id column, column and reason."""
    return pa.schema(
        [
            pa.field("row", pa.int64()),
            pa.field(id_column, pa.string()),
            pa.field("column", pa.string()),
            pa.field("reason", pa.string()),
        ]
    )


def rejects_table(
    violations: list[Violation], ids: pd.Series, first_row: int, schema: pa.Schema
) -> pa.Table:
    """Return one rejects row per violation of a chunk whose first row is ``first_row``."""
    rows = np.array([v.row for v in violations], dtype=np.int64)
    id_values = ids.to_numpy(dtype=object, na_value=None)[rows - first_row]
    return pa.Table.from_arrays(
        [
            pa.array(rows, pa.int64()),
            pa.array(id_values, pa.string()),
            pa.array([v.column for v in violations], pa.string()),
            pa.array([v.reason for v in violations], pa.string()),
        ],
        schema=schema,
    )
