"""Batch scoring on Spark (``local[2]``) against the single-process path, same run, same file.

Both engines score the same Parquet file (row groups of 100,000 rows, as a
large export has: Spark splits a Parquet file by row groups) with the same
registered model and write the same outputs; the single-process path uses
two scoring threads, Spark two executor cores, so both have the machine's
two cores. Spark's time includes starting its session (JVM and Python
workers) unless stated; its fixed cost is measured on a 1,000-row file in the
same run, so the per-row cost of each engine can be separated from it.

When Spark wins is then a calculation, saved with the figures: on C cores a
Spark job takes about ``F + N / (C * r)`` (F its fixed cost, r rows per
second per executor core measured here), one process ``N / R`` (R its
throughput here, which no process can raise past one machine). Spark wins
when ``C * r > R`` and ``N > F / (1/R - 1/(C * r))``.

Run: ``.venv/bin/python -m benchmarks.bench_spark [--rows N] [--home DIR]``.
``--home`` reuses a DESIST_HOME whose registry has ``desist-risk@champion``;
without it a scorecard is trained on 20,000 synthetic people first.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import save

MODEL_URI = "models:/desist-risk@champion"


def _train(home: Path) -> None:
    from benchmarks.support.configs import small_config
    from data.schema import NEVER_FEATURES
    from data.synthetic import SynthConfig
    from models.risk import ScorecardSettings
    from pipeline.config import DatasetConfig, GateConfig
    from pipeline.registry import promote
    from pipeline.tracking import Tracker
    from pipeline.train_risk import train

    tracker = Tracker.for_home(home)
    # The suite's small config (features, audit-only field, fairness), on a larger cohort.
    config = small_config(
        dataset=DatasetConfig(name="bench-spark", synthetic=SynthConfig(rows=20_000, seed=5)),
        models=(ScorecardSettings(),),
    )
    result = train(config, tracker=tracker)
    promote(
        tracker,
        result.registered_model,
        result.version,
        GateConfig(),
        NEVER_FEATURES,
        force=True,
        reason="benchmark model",
        actor="bench_spark",
    )


def _write_cases(rows: int, path: Path) -> None:
    from data.synthetic import SynthConfig, generate_cohort

    frame, _ = generate_cohort(SynthConfig(rows=rows, seed=91))
    frame.to_parquet(path, index=False, row_group_size=100_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--cores", type=int, default=2, help="executor cores the master gives")
    args = parser.parse_args()

    from pipeline.batch_scoring import BatchScoreConfig, score_file
    from pipeline.spark_scoring import score_file_spark
    from pipeline.spark_session import make_spark_session
    from pipeline.tracking import Tracker

    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    home = args.home or work / "home"
    if args.home is None:
        started = time.perf_counter()
        _train(home)
        print(f"trained the benchmark model in {time.perf_counter() - started:.0f} s")
    tracker = Tracker.for_home(home)
    big, small = work / "cases.parquet", work / "small.parquet"
    _write_cases(args.rows, big)
    _write_cases(1_000, small)
    figures: dict[str, Any] = {"rows": args.rows, "master": args.master, "input": "parquet"}
    figures["input_mb"] = round(big.stat().st_size / 2**20, 1)

    def config(source: Path, name: str) -> BatchScoreConfig:
        return BatchScoreConfig(
            model_uri=MODEL_URI, input=source, output=work / f"{name}.parquet", threads=2
        )

    load_before = os.getloadavg()
    started = time.perf_counter()
    one = score_file(config(big, "one"), tracker=tracker)
    single = time.perf_counter() - started

    started = time.perf_counter()
    session = make_spark_session(args.master, app="desist-bench")
    session_seconds = time.perf_counter() - started
    started = time.perf_counter()
    score_file_spark(config(small, "spark-small"), tracker=tracker, session=session)
    fixed_job = time.perf_counter() - started
    started = time.perf_counter()
    spread = score_file_spark(config(big, "spark"), tracker=tracker, session=session)
    spark_job = time.perf_counter() - started
    session.stop()
    load_after = os.getloadavg()
    assert spread.rows_scored == one.rows_scored and spread.band_counts == one.band_counts

    cores = args.cores
    fixed = session_seconds + fixed_job
    single_rate = args.rows / single
    per_core = args.rows / max(spark_job - fixed_job, 1e-9) / cores
    wins: dict[str, Any] = {}
    for c in (2, 4, 8, 16, 32, 64):
        if c * per_core <= single_rate:
            wins[f"{c}_cores"] = "never (the cores do not outpace one process)"
            continue
        rows = fixed / (1 / single_rate - 1 / (c * per_core))
        wins[f"{c}_cores"] = f"from about {rows:,.0f} rows"
    figures |= {
        "single_process_seconds": round(single, 2),
        "single_process_rows_per_second": round(single_rate),
        "spark_session_start_seconds": round(session_seconds, 2),
        "spark_job_seconds": round(spark_job, 2),
        "spark_seconds_with_session_start": round(spark_job + session_seconds, 2),
        "spark_fixed_seconds_1000_rows_job": round(fixed_job, 2),
        "spark_rows_per_second": round(args.rows / (spark_job + session_seconds)),
        "ratio_spark_to_single_throughput": round(single / (spark_job + session_seconds), 3),
        "ratio_without_session_start": round(single / spark_job, 3),
        "spark_rows_per_second_per_core_net_of_fixed_cost": round(per_core),
        "spark_wins_on_a_cluster_of": wins,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "outputs_equal_counts": True,
    }
    save("spark", figures)


if __name__ == "__main__":
    main()
