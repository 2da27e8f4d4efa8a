"""The pathway-training job: split, fit, evaluate, record, register.

Learns per-programme effects from historic referrals and outcomes with the
doubly robust learner of :mod:`models.pathways`, then judges it on a held-out
test split with doubly robust estimates (no ground truth is needed, so the
same job runs on a real extract): each programme's average effect, the value
of recommending the top programme against the rule-based baselines of
:mod:`models.pathway_rules`, Qini curves and overlap diagnostics (computed by
:mod:`pipeline.pathway_evaluation`). Everything goes to its own MLflow
experiment and a version of ``desist-pathways``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow
import pandas as pd
from mlflow.models.model import ModelInfo
from sklearn.model_selection import train_test_split

from models.contract.register import logged_model_digest, register_version
from models.contract.tags import RUN_REGISTERED_VERSION, VersionTags
from models.pathway_programmes import REFERRAL_COLUMNS
from models.pathways import PathwayEffectModel
from pipeline.config import PathwayTrainConfig
from pipeline.datasets import JobData, load_job_data, log_job_data
from pipeline.jobs import (
    Progress,
    budget_params,
    config_params,
    log_job_model,
    silent,
    staged_artifacts,
    training_run,
)
from pipeline.pathway_evaluation import (
    PathwayEvaluation,
    build_pathway_model,
    evaluate_pathways,
    selection_table,
    served_rule_tags,
)
from pipeline.pathway_plots import plot_overlap, plot_policy_values, plot_qini
from pipeline.tracking import Tracker


@dataclass(frozen=True, slots=True)
class PathwayTrainResult:
    """What a pathway-training job produced."""

    run_id: str
    experiment_id: str
    registered_model: str
    version: str
    policy_values: dict[str, tuple[float, float, float]]
    average_effects: dict[str, tuple[float, float, float]]
    recommended_share: float
    artifact_digest: str
    seconds: float


def train(
    config: PathwayTrainConfig, *, tracker: Tracker, progress: Progress = silent
) -> PathwayTrainResult:
    """Learn, evaluate, log and register a pathway-effect model.

    Parameters
    ----------
    config
        What to train (see :class:`pipeline.config.PathwayTrainConfig`).
    tracker, progress
        Where runs and the registry live, and what receives one line per long step.
    """
    started = time.perf_counter()
    with training_run(
        tracker, config.experiment, "train-pathways", config.threads, progress
    ) as job:
        experiment_id, run_id = job.experiment_id, job.run_id
        mlflow.log_params({**config_params(config), **budget_params(job.budget)})
        data = _load(config, progress)
        train_part, test = _split(data, config)
        progress(f"Fitting per-programme effects on {len(train_part):,} people (cross-fitted) ...")
        model = build_pathway_model(config).fit(
            train_part, train_part[config.target].to_numpy(dtype=int)
        )
        progress(f"Evaluating on {len(test):,} held-out people ...")
        evaluation = evaluate_pathways(model, train_part, test, config)
        info = _record(evaluation, model, test, config)
        version, digest = _register(config, run_id, info, evaluation.values, progress)
        mlflow.set_tag(RUN_REGISTERED_VERSION, version)
    return PathwayTrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        registered_model=config.registered_model,
        version=version,
        policy_values=evaluation.values,
        average_effects=evaluation.effects,
        recommended_share=evaluation.recommended_share,
        artifact_digest=digest,
        seconds=time.perf_counter() - started,
    )


def _load(config: PathwayTrainConfig, progress: Progress) -> JobData:
    """Load and validate the dataset with its referrals, and record it in the run."""
    progress(f"Loading and validating {config.dataset.name} ...")
    data = load_job_data(config.dataset, [config.target, *REFERRAL_COLUMNS], config.adapter)
    log_job_data(
        data,
        config.features,
        config.target,
        REFERRAL_COLUMNS,
        is_file=config.dataset.path is not None,
    )
    return data


def _split(data: JobData, config: PathwayTrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into training and held-out test people, stratified by outcome."""
    outcome = data.frame[config.target].to_numpy(dtype=int)
    train_part, test = train_test_split(
        data.frame, test_size=config.test_fraction, stratify=outcome, random_state=config.split_seed
    )
    return train_part, test


def _record(
    evaluation: PathwayEvaluation,
    model: PathwayEffectModel,
    test: pd.DataFrame,
    config: PathwayTrainConfig,
) -> ModelInfo:
    """Log the evaluation's metrics, plots and tables, and the model; return the model's info."""
    with staged_artifacts() as staged:
        staged.figure(plot_qini(evaluation.pseudo, evaluation.estimates), "qini_curves")
        staged.figure(plot_policy_values(evaluation.values), "policy_values")
        staged.figure(plot_overlap(evaluation.estimates, model.overlap), "overlap")
        mlflow.log_table(evaluation.overlap, "tables/overlap_by_group.json")
        staged.text(evaluation.overlap.to_csv(index=False), "tables/overlap_by_group.csv")
        staged.text(evaluation.policy_table.to_csv(index=False), "tables/policy_values.csv")
        staged.text(selection_table(model).to_csv(index=False), "tables/policy_selection.csv")
    # The served rule, chosen out of fold without the truth: what a reviewer reads first.
    mlflow.set_tags(served_rule_tags(model))
    info = log_job_model(model, config.features, test, probabilities=False)
    # After the model, linked to it in one call (logging a model copies the run's metrics
    # to it one query per metric).
    mlflow.log_metrics(evaluation.metrics, model_id=info.model_id)
    return info


def _register(
    config: PathwayTrainConfig,
    run_id: str,
    info: ModelInfo,
    values: dict[str, tuple[float, float, float]],
    progress: Progress,
) -> tuple[str, str]:
    """Register the logged model as a new version; return the version and its digest."""
    digest = logged_model_digest(info.model_uri)
    progress("Registering ...")
    tags = VersionTags(
        run_id=run_id,
        features=config.features,
        audit_only=config.audit_only,
        digest=digest,
        estimated_policy_value=values["desist top-1"][0],
        estimated_rnr_value=values["needs-score rule (RNR)"][0],
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return register_version(info.model_uri, config.registered_model, tags), digest
