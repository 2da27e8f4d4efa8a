"""The pathway-training job: which programme would lower each person's risk most.

Learns per-programme effects from historic referrals and outcomes with the
doubly robust learner of :mod:`models.pathways`, then judges it on a held-out
test split with doubly robust estimates (no ground truth is needed, so the
same job runs on a real extract): each programme's average effect, the value
of recommending the top programme against the rule-based baselines of
:mod:`models.pathway_rules`, Qini curves and overlap diagnostics. Everything
goes to its own MLflow experiment and a version of ``desist-pathways``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from data.schema import PROGRAMMES
from models.contract.artifact import skops_trusted_types
from models.contract.register import logged_model_digest, register_version
from models.contract.tags import VersionTags
from models.encoding import to_model_input
from models.pathway_rules import (
    NaivePathwayModel,
    most_common_need_policy,
    random_policy,
    rnr_policy,
)
from models.pathways import REFERRAL_COLUMNS, PathwayEffectModel, PathwayEstimates
from pipeline.config import PathwayTrainConfig
from pipeline.datasets import load_job_data, log_job_data
from pipeline.pathway_plots import plot_overlap, plot_policy_values, plot_qini
from pipeline.tracking import Tracker, model_requirements
from pipeline.train_risk import Progress, config_params, silent


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


def _mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(values.size)
    return mean, mean - half, mean + half


def build_pathway_model(config: PathwayTrainConfig) -> PathwayEffectModel:
    """Return the unfitted pathway-effect model a config describes."""
    settings = config.model
    return PathwayEffectModel(
        features=config.features,
        overlap=settings.overlap,
        min_effect=settings.min_effect,
        n_groups=settings.n_groups,
        max_iter=settings.max_iter,
        random_state=settings.random_state,
    )


def policy_values(
    pseudo: np.ndarray, choices: dict[str, np.ndarray]
) -> dict[str, tuple[float, float, float]]:
    """Estimate each policy's mean risk reduction (and 95% interval) from DR pseudo-outcomes."""
    rows = np.arange(pseudo.shape[0])
    return {name: _mean_interval(pseudo[rows, choice]) for name, choice in choices.items()}


def top_choice(estimates: PathwayEstimates) -> np.ndarray:
    """Return each person's eligible programme with the largest estimated reduction."""
    return np.argmax(np.where(estimates.eligible, estimates.effect, -np.inf), axis=1)


def overlap_table(
    test: pd.DataFrame, estimates: PathwayEstimates, attributes: tuple[str, ...]
) -> pd.DataFrame:
    """Share of eligible people outside overlap, per programme and group."""
    age_band = pd.cut(
        test["age"].to_numpy(dtype=np.float64),
        [15, 25, 35, 50, 120],
        labels=["16-25", "26-35", "36-50", "51+"],
    )
    groupings = {"age band": np.asarray(age_band.astype(str))}
    for name in attributes:
        groupings[name] = test[name].astype(object).fillna("not recorded").to_numpy()
    rows = []
    for attribute, labels in groupings.items():
        for label in pd.unique(labels):
            member = labels == label
            for j, programme in enumerate(PROGRAMMES):
                pool = member & estimates.eligible[:, j]
                if pool.sum() == 0:
                    continue
                rows.append(
                    {
                        "attribute": attribute,
                        "group": str(label),
                        "programme": programme,
                        "eligible": int(pool.sum()),
                        "outside_overlap_share": float(1 - estimates.in_overlap[pool, j].mean()),
                    }
                )
    return pd.DataFrame(rows)


def train(
    config: PathwayTrainConfig, *, tracker: Tracker, progress: Progress = silent
) -> PathwayTrainResult:
    """Learn, evaluate, log and register a pathway-effect model.

    Parameters
    ----------
    config
        What to train (see :class:`pipeline.config.PathwayTrainConfig`).
    tracker
        Where runs and the registry live.
    progress
        Receives one line per long step.
    """
    started = time.perf_counter()
    experiment_id = tracker.experiment_id(config.experiment)
    with (
        tracker.activate(),
        mlflow.start_run(experiment_id=experiment_id, run_name="train-pathways") as run,
    ):
        try:
            result = _train_in_run(config, experiment_id, run.info.run_id, progress)
        except BaseException as err:
            mlflow.set_tag("desist.error", f"{type(err).__name__}: {err}"[:5000])
            raise
    return replace(result, seconds=time.perf_counter() - started)


def _train_in_run(
    config: PathwayTrainConfig, experiment_id: str, run_id: str, progress: Progress
) -> PathwayTrainResult:
    mlflow.log_params(config_params(config))  # type: ignore[arg-type]
    progress(f"Loading and validating {config.dataset.name} ...")
    data = load_job_data(config.dataset, [config.target, *REFERRAL_COLUMNS], config.adapter)
    log_job_data(
        data,
        config.features,
        config.target,
        REFERRAL_COLUMNS,
        is_file=config.dataset.path is not None,
    )
    frame = data.frame
    outcome = frame[config.target].to_numpy(dtype=int)
    train_part, test = train_test_split(
        frame, test_size=config.test_fraction, stratify=outcome, random_state=config.split_seed
    )
    y_train = train_part[config.target].to_numpy(dtype=int)
    y_test = test[config.target].to_numpy(dtype=int)
    progress(f"Fitting per-programme effects on {len(train_part):,} people (cross-fitted) ...")
    model = build_pathway_model(config).fit(train_part, y_train)

    progress(f"Evaluating on {len(test):,} held-out people ...")
    estimates = model.estimate(test)
    pseudo = model.pseudo_outcomes(test, y_test)
    naive = NaivePathwayModel().fit(train_part, y_train)
    choices = {
        "desist top-1": top_choice(estimates),
        "random": random_policy(test, seed=config.split_seed),
        "most common need": most_common_need_policy(test),
        "needs-score rule (RNR)": rnr_policy(test),
        "naive learner": naive.policy(test),
    }
    values = policy_values(pseudo, choices)
    effects = {}
    for j, programme in enumerate(PROGRAMMES):
        pool = estimates.eligible[:, j] & estimates.in_overlap[:, j]
        effects[programme] = _mean_interval(pseudo[pool, j])
    metrics = {
        f"policy_value_{name.split(' (')[0].replace(' ', '_').replace('-', '_')}": v[0]
        for name, v in values.items()
    }
    for programme, (mean, low, high) in effects.items():
        metrics |= {
            f"average_effect_{programme}": mean,
            f"average_effect_{programme}_ci_low": low,
            f"average_effect_{programme}_ci_high": high,
        }
    for j, programme in enumerate(PROGRAMMES):
        eligible = estimates.eligible[:, j]
        metrics[f"outside_overlap_share_{programme}"] = float(
            1 - estimates.in_overlap[eligible, j].mean()
        )
        metrics[f"recommended_share_{programme}"] = float(estimates.recommended[:, j].mean())
    recommended_share = float(estimates.recommended.any(axis=1).mean())
    metrics["recommended_any_share"] = recommended_share
    mlflow.log_metrics(metrics)

    mlflow.log_figure(plot_qini(pseudo, estimates), "plots/qini_curves.png")
    mlflow.log_figure(plot_policy_values(values), "plots/policy_values.png")
    mlflow.log_figure(plot_overlap(estimates, model.overlap), "plots/overlap.png")
    overlap = overlap_table(test, estimates, config.audited_attributes)
    mlflow.log_table(overlap, "tables/overlap_by_group.json")
    mlflow.log_text(overlap.to_csv(index=False), "tables/overlap_by_group.csv")
    policy_frame = pd.DataFrame(
        [{"policy": k, "value": v[0], "ci_low": v[1], "ci_high": v[2]} for k, v in values.items()]
    )
    mlflow.log_text(policy_frame.to_csv(index=False), "tables/policy_values.csv")

    example = to_model_input(test.head(5), config.features)
    signature = mlflow.models.infer_signature(example, model.predict(example))
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        skops_trusted_types=skops_trusted_types(model),
        pip_requirements=model_requirements(),
    )
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
    version = register_version(info.model_uri, config.registered_model, tags)
    mlflow.set_tag("desist.registered_version", version)
    return PathwayTrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        registered_model=config.registered_model,
        version=version,
        policy_values=values,
        average_effects=effects,
        recommended_share=recommended_share,
        artifact_digest=digest,
        seconds=0.0,
    )
