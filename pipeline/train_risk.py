"""The risk-training job: split, fit, compare, audit, record, register.

One parent run per job holds the config, the dataset and the comparison of
families; one child run per model family holds that family's metrics, plots,
model card and model. The family with the best AUC on the *calibration*
split (never the test split, which stays an honest estimate) is registered as
a new version of the registered model. With ``calibration_folds`` set (small
data), there is no calibration split: each family is cross-fitted on every
non-test row and chosen on its out-of-fold AUC. Any failure marks the runs
FAILED with the error and registers nothing.

The steps live by concept: :mod:`pipeline.risk_families` (fit, calibrate,
choose), :mod:`pipeline.risk_audit` (screen, compare, fairness audit) and
:mod:`pipeline.risk_record` (what goes to MLflow); this module reads as the
recipe and holds the registration step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.contract.register import logged_model_digest, register_version
from models.contract.tags import DatasetTag, VersionTags, calibration_entries
from pipeline import risk_record as record
from pipeline.calibration_checks import CalibrationGateResult
from pipeline.config import RiskTrainConfig, check_leakage
from pipeline.datasets import JobData, load_job_data, log_job_data
from pipeline.evaluation import Evaluation
from pipeline.jobs import (
    Progress,
    Splits,
    silent,
    split_frame,
    staged_artifacts,
    training_run,
)
from pipeline.monitoring_reference import record_training_reference
from pipeline.risk_audit import audit, compare, judge_calibration, screen_single_features
from pipeline.risk_families import (
    FamilyResult,
    RecordedFamily,
    Selection,
    choose_family,
    fit_family,
)
from pipeline.tracking import Tracker


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
    ece_noise_floor: float = float("nan")
    #: Share of perfectly calibrated draws whose test ECE reaches the observed one.
    ece_noise_p: float = float("nan")
    comparisons: dict[str, float] = field(default_factory=dict)
    auc_gains: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    fairness_summary: tuple[str, ...] = ()
    single_feature_auc: dict[str, float] = field(default_factory=dict)
    #: The calibration gate on the test split, as recorded on the version.
    calibration_gate: CalibrationGateResult | None = None


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
    with training_run(tracker, config.experiment, "train-risk", config.threads, progress) as job:
        experiment_id, run_id, budget = job.experiment_id, job.run_id, job.budget
        # Refused before anything is read or fitted (the config check, again, for
        # configs built in code with model_construct).
        check_leakage(config.features, config.audit_only, config.adapter)
        record.record_params(config, budget)
        data = _load(config, progress)
        splits = _split(config, data, progress)
        screened = screen_single_features(config, splits.train, progress)
        selection = _fit_families(config, data, splits, experiment_id, progress)
        record.record_selection(selection, min_group_size=config.fairness.min_group_size)
        chosen, evaluation = selection.chosen.result, selection.chosen.fit.evaluation
        progress("Judging calibration on the test split ...")
        judged = judge_calibration(config, splits, selection)
        record.record_calibration_gate(judged)
        y_test = splits.test[config.target].to_numpy(dtype=int)
        with staged_artifacts() as staged:
            progress("Comparing with the incumbent and baselines on the same test rows ...")
            compared = compare(config, splits, selection)
            record.record_comparison(staged, compared, y_test)
            progress("Auditing fairness ...")
            audited = audit(config, splits, compared, progress)
            if audited is not None:
                record.record_audit(
                    staged,
                    audited,
                    min_group_size=config.fairness.min_group_size,
                    title=f"Fairness audit: {config.registered_model}",
                )
            summary = [] if audited is None else audited.summary
        # Registration comes after every check: a run that fails earlier registers nothing.
        where = "out-of-fold" if config.cross_fitted else "calibration-split"
        progress(f"Selected {chosen.family} (best {where} AUC); registering ...")
        ref = record_training_reference(  # logged for desist monitor's drift checks
            splits.train, config.features, selection.chosen.fit.test_probability, y_test
        )
        version, digest = _register(
            config, data, run_id, chosen, evaluation, selection.chosen.model_uri, judged.test, ref
        )
        record.record_registered(version)
        # The card is written once the version is known, so it is titled with it; the
        # version's source run (the family's) gets the same complete card.
        card = record.build_model_card(
            config,
            data,
            splits,
            chosen.family,
            run_id,
            evaluation,
            compared.table,
            [record.noise_note(selection, len(splits.test))],
            summary,
            version=version,
            gate=judged.test,
            links=record.parent_links(run_id, chosen.run_id, has_audit=audited is not None),
        )
        record.record_full_card(tracker, card, chosen.run_id, run_id)
        record.record_descriptions(
            tracker,
            config,
            data,
            splits,
            version,
            evaluation,
            compared,
            judged.test,
            chosen.family,
            fairness=() if audited is None else audited.headline,
        )
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        registered_model=config.registered_model,
        version=version,
        model_uri=f"models:/{config.registered_model}/{version}",
        selected_family=chosen.family,
        families=selection.results,
        test=evaluation.headline,
        max_group_calibration_gap=selection.chosen.fit.max_group_calibration_gap,
        artifact_digest=digest,
        seconds=time.perf_counter() - started,
        ece_noise_floor=selection.ece_noise_floor,
        ece_noise_p=selection.ece_noise_p,
        comparisons={str(r.model): float(r.roc_auc) for r in compared.table.itertuples()},
        auc_gains=compared.gains,
        fairness_summary=tuple(summary),
        single_feature_auc=dict(zip(screened["feature"], screened["auc"], strict=True)),
        calibration_gate=judged.test,
    )


def _load(config: RiskTrainConfig, progress: Progress) -> JobData:
    """Load and validate the dataset (and the incumbent's score), and record it in the run."""
    progress(f"Loading and validating {config.dataset.name} ...")
    require = [config.target]
    if config.incumbent is not None:
        require.append(config.incumbent.field)
    data = load_job_data(config.dataset, require, config.adapter)
    log_job_data(data, config.features, config.target, is_file=config.dataset.path is not None)
    return data


def _split(config: RiskTrainConfig, data: JobData, progress: Progress) -> Splits:
    """Split the rows into train / calibration / test and say how."""
    splits = split_frame(data.frame, config)
    progress(
        f"Split {len(data.frame):,} rows: train {len(splits.train):,}, "
        + (
            f"calibrated on {config.calibration_folds}-fold out-of-fold scores, "
            if config.cross_fitted
            else f"calibration {len(splits.calibration):,}, "
        )
        + f"test {len(splits.test):,}"
    )
    return splits


def _fit_families(
    config: RiskTrainConfig, data: JobData, splits: Splits, experiment_id: str, progress: Progress
) -> Selection:
    """Fit and record each family in its own child run, then choose one."""
    families = []
    for i, settings in enumerate(config.models, start=1):
        with record.family_run(experiment_id, settings) as family_run_id:
            fit = fit_family(config, settings, splits, progress)
            progress(
                f"  {settings.family} ({i}/{len(config.models)}): logging plots, card, model ..."
            )
            uri = record.record_family(config, data, splits, fit, family_run_id)
        families.append(RecordedFamily(fit, fit.result(family_run_id), uri))
    y_test = splits.test[config.target].to_numpy(dtype=int)
    return choose_family(families, y_test, seed=config.evaluation.bootstrap_seed)


def _register(
    config: RiskTrainConfig,
    data: JobData,
    parent_run_id: str,
    chosen: FamilyResult,
    evaluation: Evaluation,
    model_uri: str,
    calibration_gate: CalibrationGateResult,
    training_reference: str,
) -> tuple[str, str]:
    digest = logged_model_digest(model_uri)
    tags = VersionTags(
        run_id=parent_run_id,
        family_run_id=chosen.run_id,
        family=chosen.family,
        features=config.features,
        audit_only=config.audit_only,
        audited=config.audited_attributes,
        test_roc_auc=evaluation.headline["roc_auc"],
        test_ece=evaluation.headline["ece"],
        max_group_calibration_gap=evaluation.max_calibration_gap(config.gates.min_group_size),
        digest=digest,
        dataset=DatasetTag(name=data.name, source=data.source, sha256=data.sha256),
        bands=config.bands.cutoffs,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        # The complete card, logged to the source run once the version is known.
        model_card=f"runs:/{chosen.run_id}/model_card.html",
        calibration=calibration_entries(calibration_gate.to_tags()),
        training_reference=training_reference,
    )
    return register_version(model_uri, config.registered_model, tags), digest
