"""Risk training on 200,000 synthetic people: speed against the plain script, and AUC.

Figures (saved to ``benchmarks/results/train_risk.json``, or
``train_risk_contend.json`` with ``--contend``), all from one run:

- ``plain_seconds``: the plainest script doing the job's modelling work: fit
  each family of the config with the same settings on the same training
  rows, calibrate it on the calibration split, predict the test split, log
  each model to MLflow (``mlflow.sklearn.log_model`` in skops format, as the
  job does, to a local SQLite store). No
  thread control, no validation, evaluation, audit, plots or registration.
- ``job_seconds``: the whole job (``pipeline.train_risk.train``), and
  ``job_to_plain_ratio`` (target <= 1.5);
- with ``--contend``: the benchmark starts a busy process (one core kept at
  100 % by a Python loop), waits ``--settle`` seconds (the job's thread budget
  sees it in the CPU counters at once; where it falls back to the load average,
  give it 60), times the plain script and the
  job again, and stops it. ``contended_to_quiet_ratio`` is the job's time
  contended over quiet (target <= 2);
- the thread budget the job chose each time, and the load average then;
- test ROC AUC and ECE of each family; with ``--ceiling-rows`` > 0, the AUC
  ceiling reachable from the observed features (a flexible regressor of the
  generator's true probability, fitted on a separate cohort).

The machine's load is recorded with the figures: timings taken while other
work runs are not the quiet-machine figures.

Run: ``.venv/bin/python -m benchmarks.bench_train_risk [--rows 200000] [--contend]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import roc_auc_score

from benchmarks.common import save
from data.synthetic import SynthConfig, generate_cohort
from models.contract.artifact import skops_trusted_types
from models.encoding import AssessmentEncoder
from models.risk import build_risk_model, calibrate
from pipeline.config import DatasetConfig, RiskTrainConfig, load_risk_config
from pipeline.jobs import split_frame
from pipeline.tracking import Tracker
from pipeline.train_risk import TrainResult, train

CONFIG = Path(__file__).parents[1] / "configs" / "synthetic.toml"
TARGET_JOB_TO_PLAIN = 1.5
TARGET_CONTENDED_TO_QUIET = 2.0
#: Keeps one core busy, and ends when the benchmark does, even if it is killed.
BUSY_LOOP = """
import os
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(100_000):
        pass
"""


def plain_script(config: RiskTrainConfig, home: Path) -> float:
    """Time the plainest script that fits, calibrates, predicts and logs each family."""
    started = time.perf_counter()
    cohort, _truth = generate_cohort(config.dataset.synthetic or SynthConfig())
    splits = split_frame(cohort, config)
    y_train = splits.train[config.target].to_numpy(dtype=int)
    mlflow.set_tracking_uri(f"sqlite:///{home / 'plain.db'}")
    experiment = mlflow.create_experiment("plain", artifact_location=(home / "plain").as_uri())
    for settings in config.models:
        with mlflow.start_run(experiment_id=experiment):
            fitted = build_risk_model(config.features, settings).fit(splits.train, y_train)
            model = calibrate(
                fitted, splits.calibration, splits.calibration[config.target], config.calibration
            )
            model.predict_proba(splits.test)
            # skops, as the job logs it (the project loads no pickles); the types to trust
            # are the plain script's to name.
            mlflow.sklearn.log_model(
                model, name="model", skops_trusted_types=skops_trusted_types(model)
            )
    return time.perf_counter() - started


def time_job(config: RiskTrainConfig, home: Path) -> tuple[float, TrainResult, list[str]]:
    """Time the whole job in a fresh store; return its seconds, result and progress lines."""
    lines: list[str] = []

    def progress(message: str) -> None:
        lines.append(message)
        print(message, flush=True)

    started = time.perf_counter()
    result = train(config, tracker=Tracker.for_home(home), progress=progress)
    return time.perf_counter() - started, result, lines


def measure(config: RiskTrainConfig, label: str) -> dict[str, Any]:
    """Time the plain script and the job once each, in fresh stores."""
    with tempfile.TemporaryDirectory() as plain_home, tempfile.TemporaryDirectory() as job_home:
        load_before = os.getloadavg()[0]
        print(f"[{label}] plain script ...", flush=True)
        plain = plain_script(config, Path(plain_home))
        print(f"[{label}] plain script: {plain:.1f} s; the job ...", flush=True)
        job, result, lines = time_job(config, Path(job_home))
        print(f"[{label}] job: {job:.1f} s", flush=True)
    budget = next((line for line in lines if line.startswith("Thread budget")), "")
    return {
        "plain_seconds": round(plain, 1),
        "job_seconds": round(job, 1),
        "job_to_plain_ratio": round(job / plain, 2),
        "job_thread_budget": budget,
        "load_average_1m_at_start": round(load_before, 2),
        "result": result,
    }


@contextmanager
def busy_core(settle: float) -> Iterator[int]:
    """Keep one core busy with an unrelated process for the block; yield its pid."""
    process = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        print(f"busy process {process.pid} started; settling {settle:.0f} s ...", flush=True)
        time.sleep(settle)
        yield process.pid
    finally:
        process.kill()
        process.wait()
        print(f"busy process {process.pid} stopped", flush=True)


def families(result: TrainResult, ceiling: float | None) -> dict[str, dict[str, Any]]:
    """Each family's test figures and fit time."""
    return {
        f.family: {
            "test_roc_auc": round(f.test["roc_auc"], 4),
            "test_roc_auc_ci": [
                round(f.test["roc_auc_ci_low"], 4),
                round(f.test["roc_auc_ci_high"], 4),
            ],
            "test_ece": round(f.test["ece"], 4),
            "selection_roc_auc": round(f.selection_roc_auc, 4),
            "fit_seconds": round(f.fit_seconds, 2),
            **_gap(ceiling, f.test["roc_auc"]),
        }
        for f in result.families
    }


def _gap(ceiling: float | None, auc: float) -> dict[str, float]:
    return {} if ceiling is None else {"gap_to_ceiling": round(ceiling - auc, 4)}


def auc_ceiling(config: RiskTrainConfig, synth: SynthConfig, rows: int) -> dict[str, float]:
    """The AUC reachable from the observed features, and that of the latent probabilities."""
    cohort, truth = generate_cohort(synth)
    splits = split_frame(cohort, config)
    test_rows = splits.test.index.to_numpy()
    y_test = cohort.loc[test_rows, config.target].to_numpy(dtype=int)
    encoder = AssessmentEncoder(config.features).fit(cohort)
    print(f"Fitting the ceiling regressor on {rows:,} separate people ...", flush=True)
    big, big_truth = generate_cohort(SynthConfig(rows=rows, seed=4048))
    model = HistGradientBoostingRegressor(
        max_iter=500, learning_rate=0.1, max_leaf_nodes=63, early_stopping=True, random_state=0
    ).fit(encoder.transform(big), big_truth["p_reoffend"].to_numpy())
    return {
        "ceiling_roc_auc_from_observed_features": round(
            float(roc_auc_score(y_test, model.predict(encoder.transform(splits.test)))), 4
        ),
        "latent_true_probability_roc_auc": round(
            float(roc_auc_score(y_test, truth.loc[test_rows, "p_reoffend"].to_numpy())), 4
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--contend", action="store_true", help="also time with one core busy")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds busy before timing")
    parser.add_argument("--threads", type=int, help="the job's thread budget (default: chosen)")
    parser.add_argument(
        "--ceiling-rows", type=int, default=0, help="people for the AUC ceiling (0: skip)"
    )
    args = parser.parse_args()

    synth = SynthConfig(rows=args.rows, seed=2024)
    config = load_risk_config(CONFIG, threads=args.threads).model_copy(
        update={"dataset": DatasetConfig(name=f"synthetic-{args.rows}", synthetic=synth)}
    )
    quiet = measure(config, "quiet")
    result: TrainResult = quiet.pop("result")
    figures: dict[str, Any] = {
        "rows": args.rows,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "quiet": quiet,
        "target_job_to_plain_ratio": TARGET_JOB_TO_PLAIN,
        "meets_job_to_plain_target": quiet["job_to_plain_ratio"] <= TARGET_JOB_TO_PLAIN,
    }
    if args.contend:
        with busy_core(args.settle):
            contended = measure(config, "contended")
        contended.pop("result")
        ratio = contended["job_seconds"] / quiet["job_seconds"]
        figures |= {
            "contended": contended,
            "contended_to_quiet_ratio": round(ratio, 2),
            "target_contended_to_quiet_ratio": TARGET_CONTENDED_TO_QUIET,
            "meets_contended_target": ratio <= TARGET_CONTENDED_TO_QUIET,
        }
    ceiling = None
    if args.ceiling_rows > 0:
        figures |= auc_ceiling(config, synth, args.ceiling_rows)
        ceiling = figures["ceiling_roc_auc_from_observed_features"]
    figures |= {
        "selected_family": result.selected_family,
        "selected_test_roc_auc": round(result.test["roc_auc"], 4),
        "selected_test_ece": round(result.test["ece"], 4),
        "families": families(result, ceiling),
        "test_rows": round(args.rows * config.split.test_fraction),
    }
    save("train_risk_contend" if args.contend else "train_risk", figures)


if __name__ == "__main__":
    main()
