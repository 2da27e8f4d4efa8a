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

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.pandas_dataset import from_pandas

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
    source = data.source if is_file else CodeDatasetSource({"generator": data.source})
    with warnings.catch_warnings():
        # MLflow registers its local-file source class twice (for the schemes "" and "file"),
        # so every local path "can be interpreted in multiple ways" between two identical
        # classes: the warning says nothing about desist's data, and the choice is the same.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        dataset = from_pandas(logged, source=source, name=data.name, targets=target)
    mlflow.log_input(dataset, context="training")
    mlflow.set_tags({RUN_DATASET_SHA256: data.sha256, RUN_ROWS: str(len(data.frame))})
