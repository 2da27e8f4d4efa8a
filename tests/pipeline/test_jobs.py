from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from matplotlib.figure import Figure

from data.synthetic_world import SynthConfig
from models.contract.tags import RUN_ERROR, RUN_THREADS
from pipeline.config import DatasetConfig, PathwayTrainConfig
from pipeline.jobs import (
    config_params,
    job_run,
    silent,
    staged_artifacts,
    to_stderr,
    training_run,
)
from pipeline.tracking import Tracker


def _figure() -> Figure:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    return fig


def test_progress_is_discarded_or_printed_on_standard_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    silent("nothing")
    to_stderr("Loading ...")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "Loading ...\n"


def test_any_job_config_becomes_flat_text_parameters() -> None:
    config = PathwayTrainConfig(
        dataset=DatasetConfig(name="tiny", synthetic=SynthConfig(rows=100, seed=1))
    )
    params = config_params(config)
    assert params["dataset.synthetic.rows"] == "100"
    assert params["model.max_iter"] == "300"
    assert params["test_fraction"] == "0.3"
    assert json.loads(params["features"]) == list(config.features)
    assert all(isinstance(v, str) for v in params.values())


def test_staged_artifacts_land_at_the_same_paths_with_the_same_bytes(tmp_path: Path) -> None:
    tracker = Tracker.for_home(tmp_path / "home")
    experiment_id = tracker.experiment_id("staging")
    text = "café,1\n"
    with tracker.activate(), job_run(experiment_id, "direct") as direct:
        mlflow.log_figure(_figure(), "plots/curve.png")
        mlflow.log_text(text, "tables/t.csv")
        mlflow.log_text("# card", "card.md")
    with (
        tracker.activate(),
        job_run(experiment_id, "staged") as staged_id,
        staged_artifacts() as staged,
    ):
        staged.figure(_figure(), "curve")
        staged.text(text, "tables/t.csv")
        staged.text("# card", "card.md")
        assert staged.paths == ["card.md", "plots/curve.png", "tables/t.csv"]
        assert tracker.client().list_artifacts(staged_id) == []  # nothing logged yet
    folders = [
        Path(mlflow.artifacts.download_artifacts(run_id=run, tracking_uri=tracker.tracking_uri))
        for run in (direct, staged_id)
    ]
    for name in ("plots/curve.png", "tables/t.csv", "card.md"):
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name


def test_a_failing_block_logs_nothing_staged_and_the_run_records_the_error(
    tmp_path: Path,
) -> None:
    tracker = Tracker.for_home(tmp_path / "home")
    experiment_id = tracker.experiment_id("failing")
    with (
        pytest.raises(RuntimeError, match="disk full"),
        tracker.activate(),
        job_run(experiment_id, "broken"),
        staged_artifacts() as staged,
    ):
        staged.text("partial", "tables/partial.csv")
        raise RuntimeError("disk full")
    (run,) = tracker.client().search_runs([experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags[RUN_ERROR] == "RuntimeError: disk full"
    assert tracker.client().list_artifacts(run.info.run_id) == []


def test_a_training_run_is_named_in_its_experiment_and_runs_within_its_threads(
    tmp_path: Path,
) -> None:
    tracker = Tracker.for_home(tmp_path / "home")
    lines: list[str] = []
    with training_run(tracker, "training", "train-x", 1, lines.append) as job:
        mlflow.log_param(RUN_THREADS, str(job.budget.threads))
    assert job.experiment_id == tracker.experiment_id("training")
    assert job.budget.threads == 1 and lines == [f"Thread budget: 1 ({job.budget.reason})"]
    (run,) = tracker.client().search_runs([job.experiment_id])
    assert (run.info.run_id, run.info.run_name, run.info.status) == (
        job.run_id,
        "train-x",
        "FINISHED",
    )
