"""A job's training data: load it through the schema, and record it in the active run.

Both training jobs read their data the same way (a file in schema columns,
or the synthetic generator) and log it the same way (``mlflow.data`` with a
digest and source, plus the SHA-256 of the file or generator settings).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.digest_utils import MAX_ROWS, get_normalized_md5_digest
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.types import Schema

from data.adapters import SourceAdapter
from data.loaders import load_dataset, read_table
from data.synthetic import generate_cohort
from data.validation import validate_frame
from models.contract.tags import RUN_DATASET_SHA256, RUN_ROWS
from models.encoding import to_model_input
from pipeline.config import DatasetConfig


@dataclass(frozen=True, slots=True)
class JobData:
    """A validated dataset and where it came from."""

    frame: pd.DataFrame
    name: str
    source: str
    sha256: str


def load_job_data(
    dataset: DatasetConfig, require: Sequence[str], adapter: SourceAdapter | None = None
) -> JobData:
    """Load the config's dataset and validate it against the schema.

    With an ``adapter``, the file is in the source's own columns: the adapter
    maps them onto the schema first.

    Raises
    ------
    SchemaValidationError
        With every violation, when the data breaks the schema.
    SourceAdapterError
        When the adapter cannot map the file's columns.
    """
    if dataset.path is not None:
        if adapter is None:
            frame = load_dataset(dataset.path, require=require)
        else:
            mapped = adapter.apply(read_table(dataset.path))
            frame = validate_frame(mapped, require=require, source=str(dataset.path))
        sha = hashlib.sha256(dataset.path.read_bytes()).hexdigest()
        return JobData(frame, dataset.name, str(dataset.path), f"sha256:{sha}")
    assert dataset.synthetic is not None  # guaranteed by DatasetConfig
    cohort, _truth = generate_cohort(dataset.synthetic)
    frame = validate_frame(cohort, require=require, source="synthetic cohort")
    settings = dataset.synthetic.model_dump_json()
    sha = hashlib.sha256(settings.encode()).hexdigest()
    return JobData(
        frame, dataset.name, f"data.synthetic.generate_cohort({settings})", f"sha256:{sha}"
    )


def schema_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the few rows of ``frame`` from which MLflow infers the schema of all of it.

    MLflow's schema of a frame says, per column, its type and whether any value
    is missing. The type of a column is its dtype unless that is of kind
    object, when it is read from the values, one Python call each, as is the
    missing check of every column: about 2 s for the job's 200,000 people.
    Both answers depend only on the dtype and on which distinct values (and
    types of value) occur, so the first row, the first of each distinct typed
    value of every object column and the first missing value of every other
    column give the same schema (``tests/pipeline/test_datasets.py`` compares
    the two).
    """
    keep = np.zeros(len(frame), dtype=bool)
    if len(frame):
        keep[0] = True
    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind == "O":
            # Distinct by type and value (1, 1.0 and True are equal values of three types);
            # duplicated() counts every missing value as one value: the first is kept.
            typed = pd.DataFrame({"type": column.map(type).astype(object), "value": column})
            keep |= ~typed.duplicated().to_numpy()
        else:
            missing = column.isna().to_numpy()
            if missing.any():
                keep[int(missing.argmax())] = True
    return frame[keep]


class _JobDataset(PandasDataset):
    """A pandas dataset whose digest and schema are MLflow's, read off :func:`schema_rows`."""

    def _compute_digest(self) -> str:
        """Return MLflow's digest of the frame (``compute_pandas_digest``), to the character.

        MLflow hashes the first rows of the string and numeric columns, the row
        count and the column names; which columns hold only strings it finds
        by the type of every value of the whole frame, one Python call each
        (0.6 s for 200,000 people). Only object columns can, and their schema
        rows hold every type of value they hold, so those rows tell.
        """
        rows = schema_rows(self.df)
        head = self.df.head(MAX_ROWS)
        only_strings = [all(type(v) is str for v in rows[c]) for c in self.df.columns]
        wanted = head.columns[only_strings].union(head.select_dtypes(include=[np.number]).columns)
        return get_normalized_md5_digest(
            [pd.util.hash_pandas_object(head[wanted]).values, np.int64(len(self.df))]
            + [str(x).encode() for x in self.df.columns]
        )

    @cached_property
    def schema(self) -> Schema | None:
        """The schema MLflow infers from the whole frame, read from its few schema rows."""
        # The rows' own dataset is never logged: a digest is given so none is computed.
        rows = PandasDataset(schema_rows(self.df), source=self.source, digest="unlogged")
        return rows.schema


def log_job_data(
    data: JobData,
    features: tuple[str, ...],
    target: str,
    extra_columns: Sequence[str] = (),
    *,
    is_file: bool,
) -> None:
    """Record the dataset in the active run: features, target and ``extra_columns``.

    Only the model's features and outcome columns are described, never
    identifiers or protected characteristics.
    """
    logged = to_model_input(data.frame, features).assign(
        **{c: data.frame[c].to_numpy(dtype=np.float64) for c in (target, *extra_columns)}
    )
    source: DatasetSource = CodeDatasetSource({"generator": data.source})
    if is_file:
        source = _file_source(data.source)
    dataset = _JobDataset(logged, source, targets=target, name=data.name)
    mlflow.log_input(dataset, context="training")
    mlflow.set_tags({RUN_DATASET_SHA256: data.sha256, RUN_ROWS: str(len(data.frame))})


def _file_source(path: str) -> DatasetSource:
    """Return MLflow's source for a local data file (as ``mlflow.data.from_pandas`` resolves it)."""
    with warnings.catch_warnings():
        # MLflow registers its local-file source class twice (for the schemes "" and "file"),
        # so every local path "can be interpreted in multiple ways" between two identical
        # classes: the warning says nothing about desist's data, and the choice is the same.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        return resolve_dataset_source(path)
