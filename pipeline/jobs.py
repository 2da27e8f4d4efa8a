"""Helpers every job shares.

Progress lines, the config as run parameters, the thread budget, the risk
split, staged artifacts, the logged model, the run that records its own
failure and the training run that holds it.

The training jobs, the feature study, batch scoring and the command line use
these helpers; no job imports another job's names.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow.models.model import ModelInfo
from pydantic import BaseModel
from sklearn.model_selection import train_test_split

from models.contract.artifact import skops_trusted_types
from models.contract.tags import RUN_ERROR, RUN_THREADS, RUN_THREADS_REASON
from models.encoding import to_model_input
from models.threads import ThreadBudget, choose_threads, thread_limit
from pipeline.config import RiskTrainConfig
from pipeline.tracking import Tracker, model_requirements

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Receives one line per long step of a job.
Progress = Callable[[str], None]


def silent(message: str) -> None:
    """Discard progress messages (the default for library callers)."""


def to_stderr(message: str) -> None:
    """Print a progress message on standard error at once (the command line's choice)."""
    print(message, file=sys.stderr, flush=True)


def _flatten(prefix: str, value: object, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
        for i, inner in enumerate(value):
            _flatten(f"{prefix}.{i}", inner, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list | tuple) else str(value)


def config_params(config: BaseModel) -> dict[str, str]:
    """Return the whole config as flat MLflow parameters (``section.key`` -> text)."""
    out: dict[str, str] = {}
    _flatten("", config.model_dump(mode="json"), out)
    return out


def budget_params(budget: ThreadBudget) -> dict[str, str]:
    """Return the thread budget as run parameters (logged beside the config's)."""
    return {RUN_THREADS: str(budget.threads), RUN_THREADS_REASON: budget.reason}


@contextmanager
def job_threads(asked: int | None, progress: Progress) -> Iterator[ThreadBudget]:
    """Choose a job's thread budget, say it, and run the block within it.

    Every fit and prediction inside uses at most that many OpenMP and BLAS
    threads (see :mod:`models.threads`).
    """
    budget = choose_threads(asked)
    progress(f"Thread budget: {budget.threads} ({budget.reason})")
    with thread_limit(budget.threads):
        yield budget


@dataclass(frozen=True, slots=True)
class Splits:
    """Rows models learn from, a calibration split (empty when cross-fitted), test rows."""

    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame


def split_frame(frame: pd.DataFrame, config: RiskTrainConfig) -> Splits:
    """Split into train / calibration / test, stratified by outcome, reproducibly.

    When the config cross-fits its calibration, the rows that would have
    been the calibration split are training rows too and the calibration
    split is empty; the test split is the same either way.
    """
    outcome = frame[config.target].to_numpy(dtype=int)
    rest, test = train_test_split(
        frame,
        test_size=config.split.test_fraction,
        stratify=outcome,
        random_state=config.split.seed,
    )
    if config.cross_fitted:
        return Splits(rest, rest.iloc[:0], test)
    share = config.split.calibration_fraction / (1 - config.split.test_fraction)
    train, calibration = train_test_split(
        rest,
        test_size=share,
        stratify=rest[config.target].to_numpy(dtype=int),
        random_state=config.split.seed + 1,
    )
    return Splits(train, calibration, test)


def log_job_model(
    model: Any, features: tuple[str, ...], rows: pd.DataFrame, *, probabilities: bool
) -> ModelInfo:
    """Log a job's model (skops, pinned requirements), its signature and example from ``rows``.

    With ``probabilities``, the signature describes ``predict_proba`` and the
    pyfunc flavour serves it; otherwise ``predict``.
    """
    example = to_model_input(rows.head(5), features)
    output = model.predict_proba(example) if probabilities else model.predict(example)
    served = {"pyfunc_predict_fn": "predict_proba"} if probabilities else {}
    info: ModelInfo = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=mlflow.models.infer_signature(example, output),
        input_example=example,
        **served,
        skops_trusted_types=skops_trusted_types(model),
        pip_requirements=model_requirements(),
    )
    return info


@contextmanager
def recording_failure() -> Iterator[None]:
    """Tag the active run with the error before MLflow marks it FAILED."""
    try:
        yield
    except BaseException as err:
        mlflow.set_tag(RUN_ERROR, f"{type(err).__name__}: {err}"[:5000])
        raise


@contextmanager
def job_run(experiment_id: str, run_name: str, *, nested: bool = False) -> Iterator[str]:
    """Start a run that records its own failure, and yield its id."""
    with (
        mlflow.start_run(experiment_id=experiment_id, run_name=run_name, nested=nested) as run,
        recording_failure(),
    ):
        yield run.info.run_id


@dataclass(frozen=True, slots=True)
class TrainingRun:
    """A training job's run: its experiment, its id and the thread budget it runs within."""

    experiment_id: str
    run_id: str
    budget: ThreadBudget


@contextmanager
def training_run(
    tracker: Tracker, experiment: str, run_name: str, threads: int | None, progress: Progress
) -> Iterator[TrainingRun]:
    """Run the block in a training job's run, against ``tracker``'s store, within its threads.

    The run records its own failure (see :func:`job_run`); the thread budget
    is chosen from ``threads`` and said (see :func:`job_threads`).
    """
    experiment_id = tracker.experiment_id(experiment)
    with (
        tracker.activate(),
        job_run(experiment_id, run_name) as run_id,
        job_threads(threads, progress) as budget,
    ):
        yield TrainingRun(experiment_id, run_id, budget)


class StagedArtifacts:
    """Files written at once to a staging folder, logged later with one call per folder.

    The files are the bytes ``mlflow.log_figure`` and ``mlflow.log_text``
    would write (``figure.savefig(path)``; UTF-8 text), at the same run-relative
    paths, so only the number of calls to the tracking server changes.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._folders: dict[str | None, Path] = {}

    def _target(self, artifact_file: str) -> Path:
        parts = PurePosixPath(artifact_file).parts
        folder = parts[0] if len(parts) > 1 else None
        if folder not in self._folders:
            self._folders[folder] = self._root / f"{len(self._folders)}"
        target = self._folders[folder].joinpath(*parts[1:] if folder else parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def figure(self, figure: Figure, name: str) -> bytes:
        """Stage a figure as ``plots/{name}.png``; return the PNG's bytes (to reuse, not redraw)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        png = buffer.getvalue()
        self._target(f"plots/{name}.png").write_bytes(png)
        return png

    def text(self, text: str, artifact_file: str) -> None:
        """Stage ``text`` at the run-relative path ``artifact_file``."""
        self._target(artifact_file).write_text(text, encoding="utf-8")

    @property
    def paths(self) -> list[str]:
        """The run-relative paths staged so far, sorted."""
        out = []
        for folder, local in self._folders.items():
            for path in local.rglob("*"):
                if path.is_file():
                    inner = path.relative_to(local).as_posix()
                    out.append(f"{folder}/{inner}" if folder else inner)
        return sorted(out)

    def log(self) -> None:
        """Log every staged folder to the active run (one ``log_artifacts`` each)."""
        for folder, local in self._folders.items():
            mlflow.log_artifacts(str(local), folder)


@contextmanager
def staged_artifacts() -> Iterator[StagedArtifacts]:
    """Stage artifacts for the active run and log them when the block ends without error."""
    with tempfile.TemporaryDirectory(prefix="desist-artifacts-") as root:
        staged = StagedArtifacts(Path(root))
        yield staged
        staged.log()
