"""Batch scoring on Spark: the same rows, checks, scores and reasons as ``score_file``.

``score_file_spark`` runs :mod:`pipeline.batch_scoring`'s own steps (the
source adapter, the schema's row checks, the chunk scorer and the rejects
report) inside ``mapInPandas`` on Spark executors, so the two engines share
one implementation; only reading, the row numbering and the duplicate-id
check across the file are Spark's:

1. On the driver, the model is resolved, its files checked against the
   registered digest and loaded (``models.contract.fetch.fetch_model``), exactly as for one
   process; the verified model is pickled once, its SHA-256 taken, and the
   bytes broadcast. Each executor checks that hash before unpickling, so no
   executor loads model files itself or scores with anything but what the
   driver verified.
2. Rows keep their file order: a single input file is split in order, so a
   row's number is the rows of the partitions before it plus its position
   (``monotonically_increasing_id``'s low bits). Identifiers seen more than
   once are found with one aggregation (first row and count per id); each
   batch is told the earlier rows of its own repeated ids, and the schema's
   checks reject the repeats as they do across chunks in one process.
3. Executors return scores as codes and rejects as rows in one table, staged
   as Parquet beside the output; the driver streams the staged parts in order
   into the output and rejects files with batch scoring's own writers, so the
   files (types, dictionaries, CSV quoting, metadata) are those of the
   single-process path, and both appear only when the whole input is done.

CSV is read as text and each batch is typed as pandas' reader types a chunk
(its missing-value markers, numbers where every value is one), so the
checks see what they see in one process.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.adapters import SourceAdapter
from data.duplicate_ids import SeenIds
from data.errors import DatasetFormatError, DesistError, SchemaValidationError, Violation
from data.loaders import file_format
from data.schema import ID_FIELD
from data.validation import check_rows
from models.bands import BAND_NAMES
from models.contract.tags import META_ENGINE
from pipeline.batch_files import Outputs, rejects_schema_for, rejects_table
from pipeline.batch_scoring import (
    BatchScoreConfig,
    BatchScoreResult,
    LoadedRiskModel,
    RowCounts,
    ScoringSource,
    _adapt,
    _ChunkScorer,
    verified_scorer,
)
from pipeline.jobs import Progress, silent
from pipeline.spark_session import make_spark_session, typed_like_read_csv
from pipeline.tracking import Tracker

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Bits of ``monotonically_increasing_id`` that hold the position within a partition.
_POSITION_BITS = 33
_KIND_SCORE, _KIND_REJECT = "s", "r"


class SparkScoringError(DesistError):
    """Spark could not run the scoring job (the session, a task or the staging files)."""


@dataclass(frozen=True, slots=True)
class _Job:
    """What every executor task needs (small: the model travels by broadcast)."""

    adapter: SourceAdapter | None
    id_column: str
    #: Whether the input is CSV, whose values are typed as the pandas reader would type them.
    csv: bool
    top: int
    source: str
    offsets: tuple[int, ...]
    #: Repeated identifiers (canonical text) and the row of their first occurrence.
    first_rows: dict[str, int]
    #: The staged table's columns, in the order of its Spark schema.
    columns: list[str]


def _output_schema(top: int) -> Any:
    from pyspark.sql import types as T  # noqa: N812  # Spark's own idiom

    fields = [
        T.StructField("kind", T.StringType(), False),
        T.StructField("row", T.LongType(), False),
        T.StructField("id", T.StringType(), True),
        T.StructField("risk_probability", T.DoubleType(), True),
        T.StructField("band", T.ByteType(), True),
    ]
    for i in range(1, top + 1):
        fields.append(T.StructField(f"reason_{i}", T.ShortType(), True))
        fields.append(T.StructField(f"reason_{i}_contribution", T.DoubleType(), True))
    fields += [
        T.StructField("column", T.StringType(), True),
        T.StructField("reason", T.StringType(), True),
    ]
    return T.StructType(fields)


def _seed(job: _Job, ids: pd.Series, first_row: int) -> SeenIds:
    """Return the ids of this batch that first appeared before it, with their rows."""
    seen = SeenIds()
    if not job.first_rows:
        return seen
    text = ids.astype("string")
    earlier = text.map(job.first_rows).astype("float64").to_numpy()
    before = ~np.isnan(earlier) & (earlier < first_row)
    if before.any():
        known = pd.Series(text[before].unique(), dtype="string")
        seen.add(SeenIds.hashes(known), known.map(job.first_rows).to_numpy(dtype=np.int64))
    return seen


def _text(values: np.ndarray) -> pd.Series:
    """Return text as an object Series (pandas 3 infers Arrow strings, which PySpark refuses)."""
    return pd.Series(values, dtype=object)


def _score_batches(
    job: _Job, scorer: _ChunkScorer, batches: Iterator[pd.DataFrame], first_row: int
) -> Iterator[pd.DataFrame]:
    rejects_schema = rejects_schema_for(job.id_column)
    for raw in batches:
        if job.csv:
            raw = typed_like_read_csv(raw, job.id_column)
        canonical, problems = _adapt(job.adapter, raw)
        checked = check_rows(
            canonical,
            first_row=first_row,
            seen_ids=_seed(job, canonical[ID_FIELD], first_row),
            source=job.source,
            source_problems=problems,
        )
        parts = []
        if len(checked.valid):
            table, band = scorer.score(checked.valid)
            part = {
                "kind": _text(np.full(len(checked.valid), _KIND_SCORE, dtype=object)),
                "row": checked.valid.index.to_numpy(dtype=np.int64),
                "id": _text(table.column(0).to_numpy(zero_copy_only=False)),
                "risk_probability": table.column(1).to_numpy(),
                "band": band.astype(np.int8),
                "column": _text(np.full(len(checked.valid), None, dtype=object)),
                "reason": _text(np.full(len(checked.valid), None, dtype=object)),
            }
            for i in range(1, scorer.top + 1):
                codes = table.column(f"reason_{i}").combine_chunks().indices
                part[f"reason_{i}"] = codes.to_numpy().astype(np.int16)
                part[f"reason_{i}_contribution"] = table.column(
                    f"reason_{i}_contribution"
                ).to_numpy()
            parts.append(pd.DataFrame(part))
        if checked.violations:
            rejected = rejects_table(
                checked.violations, canonical[ID_FIELD], first_row, rejects_schema
            )
            text = {
                name: _text(rejected.column(name).to_numpy(zero_copy_only=False))
                for name in (job.id_column, "column", "reason")
            }
            n = rejected.num_rows
            # A rejected row has no score: codes -1 and NaN, never read back by the driver.
            reject: dict[str, Any] = {
                "kind": _text(np.full(n, _KIND_REJECT, dtype=object)),
                "row": rejected.column("row").to_numpy(),
                "id": text[job.id_column],
                "risk_probability": np.full(n, np.nan),
                "band": np.full(n, -1, dtype=np.int8),
                "column": text["column"],
                "reason": text["reason"],
            }
            for i in range(1, scorer.top + 1):
                reject[f"reason_{i}"] = np.full(n, -1, dtype=np.int16)
                reject[f"reason_{i}_contribution"] = np.full(n, np.nan)
            parts.append(pd.DataFrame(reject))
        first_row += len(raw)
        if parts:
            yield pd.concat(parts, ignore_index=True)[job.columns]


def _partition_scorer(job: _Job, model: Any) -> Any:
    """Return the ``mapInPandas`` function: one partition's batches in, codes and rejects out."""

    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext

        payload, digest = model.value
        if hashlib.sha256(payload).hexdigest() != digest:
            raise SparkScoringError("the broadcast model does not match what the driver verified")
        loaded: LoadedRiskModel = pickle.loads(payload)  # verified bytes, see above
        scorer = _ChunkScorer(loaded, job.id_column, job.top, threads=1)
        context = TaskContext.get()
        partition = 0 if context is None else context.partitionId()
        yield from _score_batches(job, scorer, batches, job.offsets[partition] + 1)

    return score_partition


def _read(spark: SparkSession, config: BatchScoreConfig, columns: frozenset[str]) -> DataFrame:
    path = str(config.input.resolve())
    if file_format(config.input) == "csv":
        frame = (
            spark.read.option("header", "true")
            .option("inferSchema", "false")
            .option("escape", '"')
            .option("mode", "FAILFAST")
            .csv(path)
        )
    else:
        frame = spark.read.parquet(path)
    return frame.select(*[f"`{name}`" for name in frame.columns if name in columns])


def _row_numbers(frame: DataFrame, id_column: str) -> tuple[tuple[int, ...], int, dict[str, int]]:
    """Return each partition's row offset, the row count, and every repeated id's first row."""
    from pyspark.sql import functions as F  # noqa: N812  # Spark's own idiom

    partition = F.spark_partition_id()
    counted = frame.groupBy(partition.alias("p")).count().collect()
    sizes = {int(r["p"]): int(r["count"]) for r in counted}
    ends = np.cumsum([sizes.get(p, 0) for p in range(frame.rdd.getNumPartitions())])
    offsets = tuple(int(x) for x in np.concatenate([[0], ends])[:-1])
    total = int(ends[-1]) if len(ends) else 0
    if id_column not in frame.columns or total == 0:
        return offsets, total, {}
    offset_of = F.element_at(F.array(*[F.lit(o) for o in offsets]), partition + 1)
    position = F.monotonically_increasing_id() - F.shiftleft(partition.cast("long"), _POSITION_BITS)
    row = offset_of + position + 1
    repeated = cast(
        pd.DataFrame,
        # Numbered in a projection first: Spark refuses a row number inside an aggregate.
        frame.select(F.col(f"`{id_column}`").alias("id"), row.alias("row"))
        .where(F.col("id").isNotNull())
        .groupBy("id")
        .agg(F.min("row").alias("first"), F.count(F.lit(1)).alias("n"))
        .where("n > 1")
        .toPandas(),
    )
    ids = repeated["id"].astype("string")
    if ids.isna().any() or ids.duplicated().any():
        raise SparkScoringError("repeated identifiers could not be keyed as text")
    return (
        offsets,
        total,
        dict(zip(ids.tolist(), repeated["first"].astype(int).tolist(), strict=True)),
    )


def _merge(staged: Path, outputs: Outputs, scorer: _ChunkScorer, schema: pa.Schema) -> RowCounts:
    """Stream the staged parts, in partition order, into the output and rejects files.

    The counts returned hold all but the rows read, which the caller knows.
    """
    counts = RowCounts()
    last_rejected = 0
    rejects_schema = rejects_schema_for(scorer.id_column)
    for part in sorted(staged.glob("part-*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=100_000):
            kinds = batch.column("kind").to_numpy(zero_copy_only=False)
            for kind in (_KIND_SCORE, _KIND_REJECT):
                rows = batch.filter(pa.array(kinds == kind))
                if rows.num_rows == 0:
                    continue
                if kind == _KIND_REJECT:
                    # A row's violations are adjacent: count the changes of row number.
                    numbers = rows.column("row").to_numpy()
                    counts.rejected += int(np.count_nonzero(np.diff(numbers))) + int(
                        numbers[0] != last_rejected
                    )
                    last_rejected = int(numbers[-1])
                    counts.violations += rows.num_rows
                    names = ("row", "id", "column", "reason")
                    outputs.rejects.write(
                        pa.Table.from_arrays([rows.column(n) for n in names], schema=rejects_schema)
                    )
                    continue
                band = rows.column("band").to_numpy().astype(np.int8)
                counts.bands += np.bincount(band, minlength=len(BAND_NAMES))
                columns: list[pa.Array] = [
                    rows.column("id"),
                    rows.column("risk_probability"),
                    pa.DictionaryArray.from_arrays(band, scorer._bands),
                ]
                for i in range(1, scorer.top + 1):
                    codes = rows.column(f"reason_{i}").to_numpy().astype(np.int16)
                    columns.append(pa.DictionaryArray.from_arrays(codes, scorer._features))
                    columns.append(rows.column(f"reason_{i}_contribution"))
                outputs.scores.write(pa.Table.from_arrays(columns, schema=schema))
    return counts


def score_file_spark(
    config: BatchScoreConfig,
    *,
    tracker: Tracker,
    master: str = "local[2]",
    session: SparkSession | None = None,
    progress: Progress = silent,
) -> BatchScoreResult:
    """Score every valid row of a file on Spark; report every rejected one.

    Same parameters, result, files and errors as
    :func:`pipeline.batch_scoring.score_file`, plus:

    Parameters
    ----------
    master
        Spark master URL (``local[2]`` here, ``spark://host:7077`` for a cluster,
        whose executors must see the input, the output's folder and this desist).
    session
        A running Spark session to use (and leave running) instead of starting one.

    Raises
    ------
    SparkScoringError
        If Spark fails for another reason than the input's format.
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    started = time.perf_counter()
    if not config.input.is_file():
        raise DatasetFormatError(f"{config.input}: no such file")
    source = ScoringSource.of(config)
    adapter, id_column = source.adapter, source.id_column
    scorer = verified_scorer(config, tracker, source, threads=1)
    loaded = scorer.loaded
    schema = scorer.schema.with_metadata(
        {**(scorer.schema.metadata or {}), META_ENGINE.encode(): f"spark {master}".encode()}
    )
    payload = pickle.dumps(loaded, protocol=pickle.HIGHEST_PROTOCOL)
    spark = session or make_spark_session(master)
    staged = config.output.with_name(f".{config.output.name}.spark-staging")
    try:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(config.chunk_rows))
        try:
            frame = _read(spark, config, source.columns)
            offsets, rows_read, first_rows = _row_numbers(frame, id_column)
        except (Py4JJavaError, PySparkException) as err:
            reason = str(err).strip().splitlines()[0][:300]
            raise DatasetFormatError(f"{config.input}: cannot be read ({reason})") from err
        if rows_read == 0:
            raise SchemaValidationError(
                [Violation("*", None, "dataset has no rows")], source=str(config.input)
            )
        # Table-wide problems (a missing column) raise here, before any task runs.
        sample = frame.limit(20).toPandas()
        if file_format(config.input) == "csv":
            sample = typed_like_read_csv(sample, id_column)
        canonical, problems = _adapt(adapter, sample)
        check_rows(canonical, source=str(config.input), source_problems=problems)
        load_seconds = time.perf_counter() - started
        progress(
            f"  {rows_read:,} rows in {len(offsets)} partitions; {len(first_rows):,} ids repeat"
        )
        job = _Job(
            adapter=adapter,
            id_column=id_column,
            csv=file_format(config.input) == "csv",
            top=scorer.top,
            source=str(config.input),
            offsets=offsets,
            first_rows=first_rows,
            columns=list(_output_schema(scorer.top).names),
        )
        model = spark.sparkContext.broadcast((payload, hashlib.sha256(payload).hexdigest()))
        shutil.rmtree(staged, ignore_errors=True)
        try:
            frame.mapInPandas(_partition_scorer(job, model), _output_schema(scorer.top)).write.mode(
                "overwrite"
            ).parquet(str(staged))
        except (Py4JJavaError, PySparkException) as err:
            reason = str(err).strip().splitlines()[0][:300]
            raise SparkScoringError(f"the Spark scoring job failed: {reason}") from err
        finally:
            model.destroy()
        progress(f"  scored on Spark in {time.perf_counter() - started:.1f} s; writing outputs")
        with Outputs(
            config.output, schema, config.rejects, rejects_schema_for(id_column)
        ) as outputs:
            counts = _merge(staged, outputs, scorer, schema)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        if session is None:
            spark.stop()
    counts.read = rows_read
    return BatchScoreResult.finished(
        config, loaded, counts, started=started, load_seconds=load_seconds
    )
