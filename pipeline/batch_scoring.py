"""Batch scoring: a CSV or Parquet file of assessments in, probability, band and reasons out.

``score_file`` streams the input in chunks (pandas ``read_csv`` chunks, or
Parquet record batches), so memory follows the chunk size, not the file
size. Each chunk goes through the source adapter (when the dataset config
has one) and the schema's row checks; the valid rows are scored and written
at once, the rejected ones go to a rejects file with their row, column and
reason. Nothing is dropped silently: every input row is in exactly one of
the two files, and the summary counts both.

The output and the rejects file are written beside their destination and
renamed into place only when the whole input has been read: a failure
(unreadable file, missing column, a model that fails its integrity check)
leaves no half-written output and does not touch an existing one.

Output columns: the input's id column (its own name), ``risk_probability``,
``risk_band``, then for each of the top reasons ``reason_<i>`` (a feature)
and ``reason_<i>_contribution`` (its log-odds contribution: positive raises
the risk, negative lowers it). Parquet outputs also record the model URI,
version and digest in the file's metadata.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from data.adapters import SourceAdapter, load_adapter
from data.duplicate_ids import SeenIds
from data.errors import SchemaValidationError, SourceValueProblem, Violation
from data.schema import ASSESSMENT_FIELDS, ID_FIELD
from data.validation import RowCheck, check_rows
from models.bands import BAND_NAMES
from models.calibration import ScoreCalibratedClassifier
from models.contract.errors import ModelLoadError
from models.contract.fetch import FetchedModel, fetch_model
from models.contract.tags import (
    META_BANDS,
    META_DIGEST,
    META_EXPLANATION_METHOD,
    META_MODEL,
    META_MODEL_URI,
    META_SCORED_AT,
    META_VERIFIED,
)
from models.explain import FastExplainer, top_contributions
from pipeline.batch_config import BatchScoreConfig, check_files
from pipeline.batch_files import (
    Outputs,
    TableSink,
    open_chunks,
    rejects_schema_for,
    rejects_table,
)
from pipeline.batch_model import ExpectedModel, check_features, expected_model, model_uri_for
from pipeline.jobs import Progress, silent
from pipeline.tracking import Tracker

#: A risk model fetched and verified for batch scoring.
LoadedRiskModel = FetchedModel[ScoreCalibratedClassifier]
_ASSESSMENT_COLUMNS = tuple(spec.name for spec in ASSESSMENT_FIELDS)


@dataclass(slots=True)
class RowCounts:
    """What a run has done so far: rows read and rejected, violations, scored rows per band."""

    #: Scored rows of each band, in ``BAND_NAMES`` order.
    bands: np.ndarray = field(default_factory=lambda: np.zeros(len(BAND_NAMES), dtype=np.int64))
    read: int = 0
    rejected: int = 0
    violations: int = 0

    @property
    def scored(self) -> int:
        """Rows scored: each has exactly one band."""
        return int(self.bands.sum())


@dataclass(frozen=True, slots=True)
class BatchScoreResult:
    """What a batch scoring run did.

    ``seconds`` runs from the start to the rename of the output;
    ``load_seconds`` of it went to opening the input and to resolving, verifying
    and loading the model.
    """

    input: Path
    output: Path
    rejects: Path
    model: LoadedRiskModel
    rows_read: int
    rows_scored: int
    rows_rejected: int
    violations: int
    band_counts: dict[str, int]
    seconds: float
    load_seconds: float

    @classmethod
    def finished(
        cls,
        config: BatchScoreConfig,
        model: LoadedRiskModel,
        counts: RowCounts,
        *,
        started: float,
        load_seconds: float,
    ) -> BatchScoreResult:
        """Return the result of a run that began at ``started`` (``time.perf_counter``)."""
        return cls(
            input=config.input,
            output=config.output,
            rejects=config.rejects,
            model=model,
            rows_read=counts.read,
            rows_scored=counts.scored,
            rows_rejected=counts.rejected,
            violations=counts.violations,
            band_counts={name: int(n) for name, n in zip(BAND_NAMES, counts.bands, strict=True)},
            seconds=time.perf_counter() - started,
            load_seconds=load_seconds,
        )

    @property
    def rows_per_second(self) -> float:
        """Input rows handled per second, end to end (model load included)."""
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0


class _ChunkScorer:
    """Turns one validated chunk into output columns with the loaded model."""

    def __init__(self, loaded: LoadedRiskModel, id_column: str, top: int, threads: int) -> None:
        self.loaded = loaded
        try:
            self.explainer = FastExplainer(loaded.model, threads=threads)
        except TypeError as err:
            raise ModelLoadError(f"{loaded.label} cannot be scored in batches: {err}") from err
        self.top = min(top, len(self.explainer.features))
        self.id_column = id_column
        self._bands = pa.array(BAND_NAMES, pa.string())
        self._features = pa.array(self.explainer.features, pa.string())
        fields = [
            pa.field(id_column, pa.string()),
            pa.field("risk_probability", pa.float64()),
            pa.field("risk_band", pa.dictionary(pa.int8(), pa.string())),
        ]
        for i in range(1, self.top + 1):
            fields.append(pa.field(f"reason_{i}", pa.dictionary(pa.int16(), pa.string())))
            fields.append(pa.field(f"reason_{i}_contribution", pa.float64()))
        self.schema = pa.schema(fields).with_metadata(
            {
                META_MODEL_URI: loaded.uri,
                META_MODEL: loaded.label,
                META_DIGEST: loaded.digest,
                META_VERIFIED: json.dumps(loaded.verified),
                META_BANDS: json.dumps(list(loaded.bands.cutoffs)),
                META_EXPLANATION_METHOD: self.explainer.method,
                META_SCORED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )

    def score(self, valid: pd.DataFrame) -> tuple[pa.Table, np.ndarray]:
        """Return the output rows of ``valid`` and each row's band index."""
        X = self.explainer.encoder.transform(valid)
        logit, contributions = self.explainer.logit_and_contributions(X)
        probability = self.loaded.model.calibrate_scores(logit)
        band = self.loaded.bands.band_index(probability).astype(np.int8)
        # Assessed fields first, as the service ranks them (models.explain.top_contributions).
        order, picked = top_contributions(contributions, self.top, ~np.isnan(X))
        columns: list[pa.Array] = [
            pa.array(valid[ID_FIELD], pa.string()),
            pa.array(probability, pa.float64()),
            pa.DictionaryArray.from_arrays(band, self._bands),
        ]
        for i in range(self.top):
            columns.append(
                pa.DictionaryArray.from_arrays(order[:, i].astype(np.int16), self._features)
            )
            columns.append(pa.array(picked[:, i], pa.float64()))
        return pa.Table.from_arrays(columns, schema=self.schema), band


@dataclass(frozen=True, slots=True)
class ScoringSource:
    """How a file's rows are read: through its dataset config's adapter, or in schema columns."""

    #: The risk model the dataset config names (None without one, or for another config).
    expected: ExpectedModel | None
    adapter: SourceAdapter | None
    id_column: str
    #: The file's columns that are read: the adapter's sources, or the assessment's fields.
    columns: frozenset[str]

    @classmethod
    def of(cls, config: BatchScoreConfig) -> ScoringSource:
        """Read the run's dataset config, if any (see :class:`BatchScoreConfig`)."""
        expected = expected_model(config.dataset_config)
        adapter = load_adapter(config.dataset_config) if config.dataset_config else None
        return cls(
            expected=expected,
            adapter=adapter,
            id_column=adapter.id_column if adapter else ID_FIELD,
            columns=frozenset(adapter.source_columns() if adapter else _ASSESSMENT_COLUMNS),
        )


def verified_scorer(
    config: BatchScoreConfig, tracker: Tracker, source: ScoringSource, *, threads: int
) -> _ChunkScorer:
    """Fetch the run's model, verified, and return the scorer of its chunks.

    Raises
    ------
    ModelIntegrityError, ModelLoadError
        As :func:`score_file`; also when the model's features are not those
        the dataset config names.
    """
    # Activated as well as passed: MLflow resolves a runs:/ model through the active store.
    with tracker.activate():
        loaded = fetch_model(
            model_uri_for(config.model_uri, source.expected),
            ScoreCalibratedClassifier,
            tracking_uri=tracker.tracking_uri,
            allow_unverified=config.allow_unverified,
        )
    scorer = _ChunkScorer(loaded, source.id_column, config.top_reasons, threads)
    check_features(loaded.label, scorer.explainer.features, source.expected)
    return scorer


def _adapt(
    adapter: SourceAdapter | None, chunk: pd.DataFrame
) -> tuple[pd.DataFrame, list[SourceValueProblem]]:
    """Return the chunk in canonical columns (only the assessment's), via the adapter if any.

    Values the adapter cannot read or map are returned as problems, so that
    their rows are rejected and the rest of the file is still scored.
    """
    problems: list[SourceValueProblem] = []
    if adapter is not None:
        chunk = adapter.apply(chunk, problems=problems)
    return chunk[[c for c in chunk.columns if c in _ASSESSMENT_COLUMNS]], problems


class _ScoreAhead:
    """Scores and writes one checked chunk on a worker thread while the caller checks the next.

    At most one chunk is in flight, so memory still follows the chunk size; the
    scores are written in the input's order (one worker, chunks taken in turn).
    The counts and the progress line of a chunk are updated once its scores are
    written, so they always describe whole chunks.
    """

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        scorer: _ChunkScorer,
        sink: TableSink,
        counts: RowCounts,
        progress: Progress,
        started: float,
        total: int | None,
    ) -> None:
        self._pool = pool
        self._scorer = scorer
        self._sink = sink
        self._counts = counts
        self._progress = progress
        self._started = started
        self._of_total = f" of {total:,}" if total else ""
        self._pending: tuple[Future[np.ndarray], int, RowCheck] | None = None

    def _score_and_write(self, valid: pd.DataFrame) -> np.ndarray:
        table, band = self._scorer.score(valid)
        self._sink.write(table)
        return np.bincount(band, minlength=len(BAND_NAMES))

    def submit(self, checked: RowCheck, rows: int) -> None:
        """Finish the chunk in flight, then start scoring ``checked`` (a chunk of ``rows``)."""
        self.finish()
        future: Future[np.ndarray] = (
            self._pool.submit(self._score_and_write, checked.valid)
            if len(checked.valid)
            else _no_bands()
        )
        self._pending = (future, rows, checked)

    def finish(self) -> None:
        """Wait for the chunk in flight (re-raising its error), count it and report progress."""
        if self._pending is None:
            return
        future, rows, checked = self._pending
        self._pending = None
        counts = self._counts
        counts.bands += future.result()
        counts.read += rows
        counts.rejected += checked.rejected_rows.size
        counts.violations += len(checked.violations)
        rate = counts.read / (time.perf_counter() - self._started)
        self._progress(
            f"  {counts.read:,}{self._of_total} rows: {counts.scored:,} scored, "
            f"{counts.rejected:,} rejected ({rate:,.0f} rows/s)"
        )


def _no_bands() -> Future[np.ndarray]:
    """Return a done future of a chunk with no valid row: no scores, no band."""
    done: Future[np.ndarray] = Future()
    done.set_result(np.zeros(len(BAND_NAMES), dtype=np.int64))
    return done


def score_file(
    config: BatchScoreConfig, *, tracker: Tracker, progress: Progress = silent
) -> BatchScoreResult:
    """Score every valid row of a file; report every rejected one.

    The file is read, checked and scored a chunk at a time; the output and
    rejects files take their names only once the whole file is done, so a
    failure midway leaves no partial output (and keeps an older one).

    Parameters
    ----------
    config
        Model, input, output and chunking (see :class:`BatchScoreConfig`).
    tracker
        Where the model registry lives.
    progress
        Receives one line per chunk (rows done, rejected, rate).

    Returns
    -------
    BatchScoreResult
        Row counts, band counts, the model used and the time taken.

    Raises
    ------
    ModelIntegrityError
        If the model's files do not match the digest recorded at registration.
    ModelLoadError
        If the model cannot be resolved or loaded (or is unregistered and
        unverified models are not allowed).
    SchemaValidationError
        If the input lacks a required column, or has no rows.
    SourceAdapterError
        If the input lacks a column the adapter reads, or the dataset config
        cannot be read. A value it cannot read or map rejects only its row (in
        the rejects file).
    DatasetFormatError
        If the input cannot be read, or an output cannot be written
        (:func:`pipeline.batch_config.check_files`, before the model is loaded).
    """
    started = time.perf_counter()
    check_files(config)
    source = ScoringSource.of(config)
    adapter, id_column = source.adapter, source.id_column
    total, chunks = open_chunks(config.input, config.chunk_rows, source.columns, id_column)
    scorer = verified_scorer(config, tracker, source, threads=config.threads)
    load_seconds = time.perf_counter() - started
    rejects_schema = rejects_schema_for(id_column)
    # Sized for the file's rows when known (Parquet): its table is never rebuilt.
    seen = SeenIds(total or 0)
    counts = RowCounts()
    with (
        Outputs(config.output, scorer.schema, config.rejects, rejects_schema) as outputs,
        # One chunk is scored and written here while the next is read and checked:
        # reading and the row checks hold the GIL, the tree walk does not, so the two
        # overlap on the cores instead of taking turns. Exited first (its chunk done)
        # so that Outputs commits or discards only whole files.
        ThreadPoolExecutor(1, thread_name_prefix="batch-score") as scoring,
    ):
        ahead = _ScoreAhead(scoring, scorer, outputs.scores, counts, progress, started, total)
        read = 0
        for raw in chunks:
            first_row = read + 1
            canonical, problems = _adapt(adapter, raw)
            checked = check_rows(
                canonical,
                first_row=first_row,
                seen_ids=seen,
                source=str(config.input),
                source_problems=problems,
            )
            if checked.violations:
                outputs.rejects.write(
                    rejects_table(
                        checked.violations, canonical[ID_FIELD], first_row, rejects_schema
                    )
                )
            read += len(raw)
            ahead.submit(checked, len(raw))
        ahead.finish()
        if counts.read == 0:
            raise SchemaValidationError(
                [Violation("*", None, "dataset has no rows")], source=str(config.input)
            )
    return BatchScoreResult.finished(
        config, scorer.loaded, counts, started=started, load_seconds=load_seconds
    )
