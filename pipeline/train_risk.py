"""The risk-training job: data -> split -> fit -> calibrate -> evaluate -> MLflow -> registry.

One parent run per job holds the config, the dataset and the comparison of
families; one child run per model family holds that family's metrics, plots,
model card and model. The family with the best AUC on the *calibration*
split (never the test split, which stays an honest estimate) is registered as
a new version of the registered model. Any failure marks the runs FAILED
with the error and registers nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from data.schema import FIELDS_BY_NAME
from models.calibration import ScoreCalibratedClassifier
from models.digest import directory_digest
from models.encoding import to_model_input
from models.explain import explain, feature_effects
from models.risk import BoostingSettings, ScorecardSettings, build_risk_model, calibrate
from pipeline.config import RiskTrainConfig
from pipeline.datasets import JobData, load_job_data, log_job_data
from pipeline.evaluation import Evaluation, evaluate_scores
from pipeline.model_card import ModelCard, render_html, render_markdown
from pipeline.plots import (
    plot_band_table,
    plot_feature_effects,
    plot_group_calibration,
    plot_reliability,
    plot_roc,
    plot_score_distribution,
)
from pipeline.registry import (
    TAG_AUC,
    TAG_AUDIT_ONLY,
    TAG_BANDS,
    TAG_DATASET,
    TAG_DIGEST,
    TAG_ECE,
    TAG_FAMILY,
    TAG_FEATURES,
    TAG_GROUP_GAP,
    TAG_RUN,
)
from pipeline.tracking import Tracker, skops_trusted_types

Progress = Callable[[str], None]

#: Rows explained to draw the feature-effects plot (enough for stable means).
EFFECT_SAMPLE = 5_000


def silent(message: str) -> None:
    """Discard progress messages (the default for library callers)."""


@dataclass(frozen=True, slots=True)
class FamilyResult:
    """One model family's outcome within a job."""

    family: str
    run_id: str
    calibration_roc_auc: float
    test: dict[str, float]
    fit_seconds: float


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a risk-training job produced."""

    run_id: str
    experiment_id: str
    registered_model: str
    version: str
    model_uri: str
    selected_family: str
    families: tuple[FamilyResult, ...]
    test: dict[str, float]
    max_group_calibration_gap: float
    artifact_digest: str
    seconds: float


@dataclass(frozen=True, slots=True)
class _Splits:
    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame


def split_frame(frame: pd.DataFrame, config: RiskTrainConfig) -> _Splits:
    """Split into train / calibration / test, stratified by outcome, reproducibly."""
    outcome = frame[config.target].to_numpy(dtype=int)
    rest, test = train_test_split(
        frame,
        test_size=config.split.test_fraction,
        stratify=outcome,
        random_state=config.split.seed,
    )
    share = config.split.calibration_fraction / (1 - config.split.test_fraction)
    train, calibration = train_test_split(
        rest,
        test_size=share,
        stratify=rest[config.target].to_numpy(dtype=int),
        random_state=config.split.seed + 1,
    )
    return _Splits(train, calibration, test)


def _flatten(prefix: str, value: object, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
        for i, inner in enumerate(value):
            _flatten(f"{prefix}.{i}", inner, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list | tuple) else str(value)


def config_params(config: RiskTrainConfig) -> dict[str, str]:
    """Return the whole config as flat MLflow parameters (``section.key`` -> text)."""
    out: dict[str, str] = {}
    _flatten("", config.model_dump(mode="json"), out)
    return out


def _log_figure(figure: object, name: str) -> None:
    mlflow.log_figure(figure, f"plots/{name}.png")


@contextmanager
def _recording_failure() -> Iterator[None]:
    """Tag the active run with the error before MLflow marks it FAILED."""
    try:
        yield
    except BaseException as err:
        mlflow.set_tag("desist.error", f"{type(err).__name__}: {err}"[:5000])
        raise


def _groups(frame: pd.DataFrame, config: RiskTrainConfig) -> dict[str, pd.Series]:
    return {name: frame[name].astype(object) for name in config.audited_attributes}


def _evaluate(config: RiskTrainConfig, frame: pd.DataFrame, probability: np.ndarray) -> Evaluation:
    return evaluate_scores(
        frame[config.target].to_numpy(dtype=int),
        probability,
        bands=config.bands,
        groups=_groups(frame, config),
        n_bootstrap=config.evaluation.n_bootstrap,
        seed=config.evaluation.bootstrap_seed,
    )


def _model_card(
    config: RiskTrainConfig,
    data: JobData,
    splits: _Splits,
    family: str,
    run_id: str,
    evaluation: Evaluation,
    version: str | None,
    comparisons: pd.DataFrame | None,
) -> ModelCard:
    return ModelCard(
        model_name=config.registered_model,
        version=version,
        family=family,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        run_id=run_id,
        dataset_name=data.name,
        dataset_source=data.source,
        dataset_digest=data.sha256,
        n_train=len(splits.train),
        n_calibration=len(splits.calibration),
        n_test=len(splits.test),
        target=config.target,
        target_description=FIELDS_BY_NAME[config.target].description,
        features=list(config.features),
        audit_only=list(config.audited_attributes),
        bands=config.bands,
        evaluation=evaluation,
        comparisons=comparisons,
        notes=[],
        fairness_summary=[],
    )


def _log_card(card: ModelCard, stem: str = "model_card") -> None:
    mlflow.log_text(render_markdown(card), f"{stem}.md")
    mlflow.log_text(render_html(card), f"{stem}.html")


def _fit_family(
    config: RiskTrainConfig,
    settings: ScorecardSettings | BoostingSettings,
    data: JobData,
    splits: _Splits,
    experiment_id: str,
    progress: Progress,
) -> tuple[FamilyResult, ScoreCalibratedClassifier, Evaluation, str]:
    """Fit, calibrate, evaluate and log one family in a child run."""
    y_train = splits.train[config.target].to_numpy(dtype=int)
    with (
        mlflow.start_run(experiment_id=experiment_id, run_name=settings.family, nested=True) as run,
        _recording_failure(),
    ):
        mlflow.set_tag(TAG_FAMILY, settings.family)
        mlflow.log_params({f"model.{k}": v for k, v in settings.model_dump().items()})
        progress(f"  {settings.family}: fitting on {len(splits.train):,} rows ...")
        started = time.perf_counter()
        fitted = build_risk_model(config.features, settings).fit(splits.train, y_train)
        model = calibrate(
            fitted, splits.calibration, splits.calibration[config.target], config.calibration
        )
        fit_seconds = time.perf_counter() - started
        calibration_auc = float(
            roc_auc_score(
                splits.calibration[config.target].to_numpy(dtype=int),
                model.predict_proba(splits.calibration)[:, 1],
            )
        )
        progress(f"  {settings.family}: fitted in {fit_seconds:.1f} s; evaluating on test ...")
        probability = model.predict_proba(splits.test)[:, 1]
        evaluation = _evaluate(config, splits.test, probability)
        mlflow.log_metrics(
            {
                **evaluation.metrics("test_"),
                "calibration_split_roc_auc": calibration_auc,
                "fit_seconds": fit_seconds,
                "test_max_group_calibration_gap": evaluation.max_calibration_gap(
                    config.gates.min_group_size
                ),
            }
        )
        _log_artifacts(config, splits, model, evaluation, probability)
        card = _model_card(
            config, data, splits, settings.family, run.info.run_id, evaluation, None, None
        )
        _log_card(card)
        uri = _log_model(config, splits, model)
    result = FamilyResult(
        family=settings.family,
        run_id=run.info.run_id,
        calibration_roc_auc=calibration_auc,
        test=evaluation.headline,
        fit_seconds=fit_seconds,
    )
    return result, model, evaluation, uri


def _log_artifacts(
    config: RiskTrainConfig,
    splits: _Splits,
    model: ScoreCalibratedClassifier,
    evaluation: Evaluation,
    probability: np.ndarray,
) -> None:
    y_test = splits.test[config.target].to_numpy(dtype=int)
    _log_figure(plot_roc(y_test, probability, label="test split"), "roc_curve")
    _log_figure(plot_reliability(y_test, probability), "reliability")
    _log_figure(plot_score_distribution(y_test, probability), "score_distribution")
    _log_figure(plot_band_table(evaluation.band_table), "bands")
    _log_figure(plot_group_calibration(evaluation.group_table), "group_calibration")
    sample = splits.test.head(EFFECT_SAMPLE)
    effects = feature_effects(explain(model, sample), sample)
    _log_figure(plot_feature_effects(effects), "feature_effects")
    mlflow.log_table(effects, "tables/feature_effects.json")
    mlflow.log_table(evaluation.band_table, "tables/band_table.json")
    mlflow.log_table(evaluation.group_table, "tables/group_table.json")
    mlflow.log_text(evaluation.band_table.to_csv(index=False), "tables/band_table.csv")
    mlflow.log_text(evaluation.group_table.to_csv(index=False), "tables/group_table.csv")


def _log_model(config: RiskTrainConfig, splits: _Splits, model: ScoreCalibratedClassifier) -> str:
    example = to_model_input(splits.test.head(5), config.features)
    signature = mlflow.models.infer_signature(example, model.predict_proba(example))
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=skops_trusted_types(model),
    )
    return str(info.model_uri)


def _register(
    config: RiskTrainConfig,
    data: JobData,
    parent_run_id: str,
    chosen: FamilyResult,
    evaluation: Evaluation,
    model_uri: str,
) -> tuple[str, str]:
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    digest = directory_digest(local)
    gap = evaluation.max_calibration_gap(config.gates.min_group_size)
    tags = {
        TAG_RUN: parent_run_id,
        "desist.family_run_id": chosen.run_id,
        TAG_FAMILY: chosen.family,
        TAG_FEATURES: json.dumps(list(config.features)),
        TAG_AUDIT_ONLY: json.dumps(list(config.audit_only)),
        "desist.audited": json.dumps(list(config.audited_attributes)),
        TAG_AUC: f"{evaluation.headline['roc_auc']:.6f}",
        TAG_ECE: f"{evaluation.headline['ece']:.6f}",
        TAG_GROUP_GAP: f"{gap:.6f}",
        TAG_DIGEST: digest,
        TAG_DATASET: json.dumps({"name": data.name, "source": data.source, "sha256": data.sha256}),
        TAG_BANDS: json.dumps(list(config.bands.cutoffs)),
        "desist.trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "desist.model_card": f"runs:/{chosen.run_id}/model_card.html",
    }
    version = mlflow.register_model(model_uri, config.registered_model, tags=tags)
    return str(version.version), digest


def train(config: RiskTrainConfig, *, tracker: Tracker, progress: Progress = silent) -> TrainResult:
    """Train, evaluate, log and register a re-offending risk model.

    Parameters
    ----------
    config
        What to train (see :class:`pipeline.config.RiskTrainConfig`).
    tracker
        Where runs and the registry live.
    progress
        Receives one line per long step.

    Returns
    -------
    TrainResult
        The parent run, the registered version and the headline figures.

    Raises
    ------
    SchemaValidationError
        If the data breaks the schema (the run is marked FAILED, nothing registered).
    """
    started = time.perf_counter()
    experiment_id = tracker.experiment_id(config.experiment)
    with (
        tracker.activate(),
        mlflow.start_run(experiment_id=experiment_id, run_name="train-risk") as parent,
        _recording_failure(),
    ):
        mlflow.log_params(config_params(config))
        progress(f"Loading and validating {config.dataset.name} ...")
        data = load_job_data(config.dataset, [config.target])
        log_job_data(data, config.features, config.target, is_file=config.dataset.path is not None)
        splits = split_frame(data.frame, config)
        progress(
            f"Split {len(data.frame):,} rows: train {len(splits.train):,}, "
            f"calibration {len(splits.calibration):,}, test {len(splits.test):,}"
        )
        fitted = [
            _fit_family(config, s, data, splits, experiment_id, progress) for s in config.models
        ]
        best = max(fitted, key=lambda f: f[0].calibration_roc_auc)
        chosen, _model, evaluation, model_uri = best
        comparison = pd.DataFrame(
            [
                {
                    "model": f.family,
                    "calibration_split_roc_auc": f.calibration_roc_auc,
                    **{k: f.test[k] for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high")},
                    "ece": f.test["ece"],
                    "brier": f.test["brier"],
                    "fit_seconds": f.fit_seconds,
                }
                for f, *_ in fitted
            ]
        )
        mlflow.log_table(comparison, "tables/family_comparison.json")
        mlflow.log_metrics(evaluation.metrics("test_"))
        gap = evaluation.max_calibration_gap(config.gates.min_group_size)
        mlflow.log_metric("test_max_group_calibration_gap", gap)
        mlflow.set_tag("desist.selected_family", chosen.family)
        card = _model_card(
            config,
            data,
            splits,
            chosen.family,
            parent.info.run_id,
            evaluation,
            None,
            comparison[["model", "roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "ece", "brier"]],
        )
        _log_card(card)
        # Registration is the run's last step: a run that fails earlier registers nothing.
        progress(f"Selected {chosen.family} (best calibration-split AUC); registering ...")
        version, digest = _register(config, data, parent.info.run_id, chosen, evaluation, model_uri)
        mlflow.set_tag("desist.registered_version", version)
    return TrainResult(
        run_id=parent.info.run_id,
        experiment_id=experiment_id,
        registered_model=config.registered_model,
        version=version,
        model_uri=f"models:/{config.registered_model}/{version}",
        selected_family=chosen.family,
        families=tuple(f for f, *_ in fitted),
        test=evaluation.headline,
        max_group_calibration_gap=gap,
        artifact_digest=digest,
        seconds=time.perf_counter() - started,
    )
