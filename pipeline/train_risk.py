"""The risk-training job: data -> split -> fit -> calibrate -> evaluate -> MLflow -> registry.

One parent run per job holds the config, the dataset and the comparison of
families; one child run per model family holds that family's metrics, plots,
model card and model. The family with the best AUC on the *calibration*
split (never the test split, which stays an honest estimate) is registered as
a new version of the registered model. With ``calibration_folds`` set (small
data), there is no calibration split: each family is cross-fitted on every
non-test row and chosen on its out-of-fold AUC. Any failure marks the runs
FAILED with the error and registers nothing.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from data.errors import LeakageError
from data.schema import FIELDS_BY_NAME
from models.calibration import ScoreCalibratedClassifier
from models.contract.artifact import skops_trusted_types
from models.contract.register import logged_model_digest, register_version
from models.contract.tags import TAG_FAMILY, DatasetTag, VersionTags
from models.encoding import to_model_input
from models.explain import explain, feature_effects
from models.risk import AnySettings, build_risk_model, calibrate, cross_fit
from pipeline.comparison import (
    OperatingPoint,
    ScoredTest,
    build_baseline,
    level_rates,
    matched_threshold,
    paired_auc_difference,
    single_feature_aucs,
)
from pipeline.config import RiskTrainConfig, check_leakage
from pipeline.datasets import JobData, load_job_data, log_job_data
from pipeline.evaluation import (
    Evaluation,
    debiased_calibration_error,
    ece_noise_floor,
    ece_noise_test,
    evaluate_scores,
    expected_calibration_error,
)
from pipeline.fairness import (
    FairnessAudit,
    audit_fairness,
    plot_calibration_by_decile,
    plot_error_rates,
    render_report,
)
from pipeline.model_card import ModelCard, render_html, render_markdown
from pipeline.plots import (
    plot_band_table,
    plot_feature_effects,
    plot_group_calibration,
    plot_reliability,
    plot_roc,
    plot_roc_comparison,
    plot_score_distribution,
)
from pipeline.tracking import Tracker, model_requirements

Progress = Callable[[str], None]

#: Rows explained to draw the feature-effects plot (enough for stable means).
EFFECT_SAMPLE = 5_000
#: The model this job trains, as named in comparison and fairness tables.
DESIST = "desist"
#: desist's own operating cut-off: flagged when re-offending is more likely than not.
MORE_LIKELY_THAN_NOT = 0.5


class LeakageWarning(UserWarning):
    """A single feature separates the outcome implausibly well on its own."""


def silent(message: str) -> None:
    """Discard progress messages (the default for library callers)."""


@dataclass(frozen=True, slots=True)
class FamilyResult:
    """One model family's outcome within a job."""

    family: str
    run_id: str
    #: AUC on the rows families are chosen on: the calibration split, or
    #: out-of-fold over the training rows when cross-fitted. Never the test split.
    selection_roc_auc: float
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
    ece_noise_floor: float = float("nan")
    #: Share of perfectly calibrated draws whose test ECE reaches the observed one.
    ece_noise_p: float = float("nan")
    comparisons: dict[str, float] = field(default_factory=dict)
    auc_gains: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    fairness_summary: tuple[str, ...] = ()
    single_feature_auc: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Splits:
    """Rows models learn from, a calibration split (empty when cross-fitted), test rows."""

    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame


def split_frame(frame: pd.DataFrame, config: RiskTrainConfig) -> _Splits:
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
        return _Splits(rest, rest.iloc[:0], test)
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
    """Audited attributes the data records (an attribute nobody recorded has nothing to audit)."""
    return {
        name: frame[name].astype(object)
        for name in config.audited_attributes
        if frame[name].notna().any()
    }


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
    notes: list[str] | None = None,
    fairness_summary: list[str] | None = None,
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
        notes=notes or [],
        fairness_summary=fairness_summary or [],
        calibration=_calibration_words(config, splits),
        intended_use=config.intended_use,
    )


def _calibration_words(config: RiskTrainConfig, splits: _Splits) -> str:
    """How the job calibrated its probabilities, for the model card."""
    method = "Platt scaling" if config.calibration == "sigmoid" else "smoothed isotonic map"
    if config.cross_fitted:
        return (
            f"{method} learned from {config.calibration_folds}-fold out-of-fold scores of all "
            f"{len(splits.train):,} training people (cross-fitting); the model itself is "
            "fitted on all of them"
        )
    return f"{method} learned on the {len(splits.calibration):,} calibration people"


def _log_card(card: ModelCard, stem: str = "model_card") -> None:
    mlflow.log_text(render_markdown(card), f"{stem}.md")
    mlflow.log_text(render_html(card), f"{stem}.html")


def _choice_rows(config: RiskTrainConfig, splits: _Splits) -> pd.DataFrame:
    """Rows on which the job makes its choices (family, comparable cut-off), never the test split.

    The calibration split; or, when cross-fitted, the training rows, each
    scored out-of-fold.
    """
    return splits.train if config.cross_fitted else splits.calibration


@dataclass(frozen=True, eq=False)
class _FamilyFit:
    """One family fitted, calibrated, evaluated and logged."""

    result: FamilyResult
    model: ScoreCalibratedClassifier
    evaluation: Evaluation
    model_uri: str
    #: Out-of-sample probabilities on :func:`_choice_rows`, in their order.
    choice_probability: np.ndarray


def _fit_and_calibrate(
    config: RiskTrainConfig, settings: AnySettings, splits: _Splits
) -> tuple[ScoreCalibratedClassifier, np.ndarray]:
    """Return the calibrated model and its out-of-sample probabilities on the choice rows."""
    y_train = splits.train[config.target]
    if config.cross_fitted:
        crossed = cross_fit(
            config.features,
            settings,
            splits.train,
            y_train,
            method=config.calibration,
            folds=config.calibration_folds,
            seed=config.split.seed,
        )
        return crossed.model, crossed.out_of_fold_probability
    fitted = build_risk_model(config.features, settings).fit(
        splits.train, y_train.to_numpy(dtype=int)
    )
    model = calibrate(
        fitted, splits.calibration, splits.calibration[config.target], config.calibration
    )
    return model, model.predict_proba(splits.calibration)[:, 1]


def _choice_metrics(
    config: RiskTrainConfig, splits: _Splits, probability: np.ndarray
) -> tuple[float, dict[str, float]]:
    """Return the selection AUC on the choice rows, and the metrics to log about them.

    Out-of-fold scores cover every training row, so their ECE is logged too: a
    calibration check on about four times the test split's rows, with a much
    lower sampling-noise floor.
    """
    y = _choice_rows(config, splits)[config.target].to_numpy(dtype=int)
    auc = float(roc_auc_score(y, probability))
    if not config.cross_fitted:
        return auc, {"calibration_split_roc_auc": auc}
    return auc, {
        "out_of_fold_roc_auc": auc,
        "out_of_fold_ece": expected_calibration_error(y, probability),
        "out_of_fold_ece_debiased": debiased_calibration_error(y, probability),
        "out_of_fold_ece_noise_floor": ece_noise_floor(
            probability, seed=config.evaluation.bootstrap_seed
        ),
    }


def _fit_family(
    config: RiskTrainConfig,
    settings: AnySettings,
    data: JobData,
    splits: _Splits,
    experiment_id: str,
    progress: Progress,
) -> _FamilyFit:
    """Fit, calibrate, evaluate and log one family in a child run."""
    with (
        mlflow.start_run(experiment_id=experiment_id, run_name=settings.family, nested=True) as run,
        _recording_failure(),
    ):
        mlflow.set_tag(TAG_FAMILY, settings.family)
        mlflow.log_params({f"model.{k}": v for k, v in settings.model_dump().items()})
        how = (
            f" ({config.calibration_folds}-fold cross-fitted calibration)"
            if config.cross_fitted
            else ""
        )
        progress(f"  {settings.family}: fitting on {len(splits.train):,} rows{how} ...")
        started = time.perf_counter()
        model, choice_probability = _fit_and_calibrate(config, settings, splits)
        fit_seconds = time.perf_counter() - started
        selection_auc, choice = _choice_metrics(config, splits, choice_probability)
        progress(f"  {settings.family}: fitted in {fit_seconds:.1f} s; evaluating on test ...")
        probability = model.predict_proba(splits.test)[:, 1]
        evaluation = _evaluate(config, splits.test, probability)
        mlflow.log_metrics(
            {
                **evaluation.metrics("test_"),
                **choice,
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
        selection_roc_auc=selection_auc,
        test=evaluation.headline,
        fit_seconds=fit_seconds,
    )
    return _FamilyFit(result, model, evaluation, uri, choice_probability)


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
        pip_requirements=model_requirements(),
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
        model_card=f"runs:/{chosen.run_id}/model_card.html",
    )
    return register_version(model_uri, config.registered_model, tags), digest


def screen_single_features(
    config: RiskTrainConfig, train_rows: pd.DataFrame, progress: Progress
) -> pd.DataFrame:
    """Warn (and record in the run) when one feature alone predicts the outcome too well.

    Returns
    -------
    pandas.DataFrame
        Each feature's AUC on its own, on the training split.
    """
    table = single_feature_aucs(train_rows, config.features, config.target)
    mlflow.log_table(table, "tables/single_feature_auc.json")
    suspects = table[table["auc"] > config.single_feature_auc_limit]
    if len(suspects):
        text = "; ".join(
            f"{r.feature} alone reaches AUC {r.auc:.3f}" for r in suspects.itertuples()
        )
        message = (
            f"possible leakage: {text} (limit {config.single_feature_auc_limit}); "
            "check that it is known at the assessment date"
        )
        warnings.warn(message, LeakageWarning, stacklevel=2)
        mlflow.set_tag("desist.leakage_warning", message[:5000])
        progress(f"WARNING {message}")
    return table


@dataclass(frozen=True, eq=False)
class _Compared:
    """desist and the scores it is compared with, on the same test rows."""

    scored: tuple[ScoredTest, ...]
    evaluations: dict[str, Evaluation]
    table: pd.DataFrame
    gains: dict[str, tuple[float, float, float]]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _compare(
    config: RiskTrainConfig,
    splits: _Splits,
    chosen: _FamilyFit,
    family_rows: list[dict[str, object]],
) -> _Compared:
    """Score the incumbent and the baselines on desist's test rows, and set operating points."""
    y_train = splits.train[config.target].to_numpy(dtype=int)
    y_test = splits.test[config.target].to_numpy(dtype=int)
    p_test = chosen.model.predict_proba(splits.test)[:, 1]
    desist_points = [OperatingPoint(f"p >= {MORE_LIKELY_THAN_NOT:g}", MORE_LIKELY_THAN_NOT)]
    scored: list[ScoredTest] = []
    evaluations: dict[str, Evaluation] = {DESIST: chosen.evaluation}
    rows = list(family_rows)
    incumbent = config.incumbent
    if incumbent is not None:
        score = splits.test[incumbent.field].to_numpy(dtype=float, na_value=np.nan)
        if np.isnan(score).any():
            raise LeakageError(incumbent.field, "the incumbent's score is missing on test rows")
        train_score = splits.train[incumbent.field].to_numpy(dtype=float, na_value=np.nan)
        probability = level_rates(train_score, y_train, score)
        cut = OperatingPoint(f"{incumbent.name} >= {incumbent.cutoff:g}", incumbent.cutoff)
        scored.append(ScoredTest(incumbent.name, score, probability, (cut,)))
        # Comparable cut-off: flag as many people as the incumbent does, found on the
        # choice rows (out-of-sample probabilities) so the test split stays untouched.
        choice_score = _choice_rows(config, splits)[incumbent.field].to_numpy(dtype=float)
        rate = float(np.mean(choice_score >= incumbent.cutoff))
        threshold = matched_threshold(chosen.choice_probability, rate)
        desist_points.insert(
            0, OperatingPoint(f"p >= {threshold:.3f} (flags as many as {cut.label})", threshold)
        )
        evaluations[incumbent.name] = _evaluate(config, splits.test, probability)
    for baseline in config.baselines:
        fitted = build_baseline(baseline.features).fit(splits.train, y_train)
        probability = fitted.predict_proba(splits.test)[:, 1]
        points = (OperatingPoint(f"p >= {MORE_LIKELY_THAN_NOT:g}", MORE_LIKELY_THAN_NOT),)
        scored.append(ScoredTest(baseline.name, probability, probability, points))
        evaluations[baseline.name] = _evaluate(config, splits.test, probability)
    scored.insert(0, ScoredTest(DESIST, p_test, p_test, tuple(desist_points)))
    gains: dict[str, tuple[float, float, float]] = {}
    for other in scored[1:]:
        head = evaluations[other.name].headline
        # The incumbent's AUC is that of its own score (deciles), not of the rate map.
        auc = float(roc_auc_score(y_test, other.score))
        rows.append(
            {
                "model": other.name,
                "roc_auc": auc,
                "roc_auc_ci_low": head["roc_auc_ci_low"],
                "roc_auc_ci_high": head["roc_auc_ci_high"],
                "ece": head["ece"],
                "brier": head["brier"],
            }
        )
        gains[other.name] = paired_auc_difference(
            y_test,
            p_test,
            other.score,
            n_bootstrap=config.evaluation.n_bootstrap,
            seed=config.evaluation.bootstrap_seed,
        )
    return _Compared(tuple(scored), evaluations, pd.DataFrame(rows), gains)


def _log_comparison(compared: _Compared, y_test: np.ndarray) -> None:
    metrics: dict[str, float] = {}
    for other in compared.scored[1:]:
        stem = f"test_{_slug(other.name)}"
        row = compared.table[compared.table["model"] == other.name].iloc[0]
        metrics[f"{stem}_roc_auc"] = float(row["roc_auc"])
        metrics[f"{stem}_ece"] = float(row["ece"])
        gain, low, high = compared.gains[other.name]
        metrics[f"test_auc_gain_over_{_slug(other.name)}"] = gain
        metrics[f"test_auc_gain_over_{_slug(other.name)}_ci_low"] = low
        metrics[f"test_auc_gain_over_{_slug(other.name)}_ci_high"] = high
    mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
    mlflow.log_table(compared.table, "tables/comparison.json")
    mlflow.log_text(compared.table.to_csv(index=False), "tables/comparison.csv")
    # The incumbent's curve is drawn on its level rates, a monotone map of its deciles.
    curves = {s.name: s.probability for s in compared.scored}
    _log_figure(plot_roc_comparison(y_test, curves), "roc_comparison")


def _fairness_summary(
    audit: FairnessAudit, compared: _Compared, config: RiskTrainConfig
) -> list[str]:
    """Return the audit's key figures in words, for the model card and the report."""
    fair = config.fairness
    lines = []
    for model in compared.scored:
        for point in model.operating_points:
            ratio = audit.ratio(model.name, point.label)
            if ratio is None:
                continue
            a = audit.value(model.name, fair.attribute, fair.group, "fpr", point.label)
            b = audit.value(model.name, fair.attribute, fair.reference, "fpr", point.label)
            lines.append(
                f"False positive rate ratio {fair.group} / {fair.reference}, {model.name} at "
                f"{point.label}: {ratio['value']:.2f} (95% CI {ratio['ci_low']:.2f} to "
                f"{ratio['ci_high']:.2f}); FPR {a:.1%} vs {b:.1%}."
            )
    for attribute in dict.fromkeys(audit.by_group["attribute"]):
        for model in compared.scored[:2]:
            rows = audit.by_group[
                (audit.by_group["model"] == model.name)
                & (audit.by_group["attribute"] == attribute)
                & (audit.by_group["metric"] == "calibration_gap")
                & audit.by_group["ci_low"].notna()
            ]
            gaps = ", ".join(
                f"{r.group} {100 * r.value:+.1f} ({100 * r.ci_low:+.1f} to {100 * r.ci_high:+.1f})"
                for r in rows.itertuples()
            )
            if gaps:
                lines.append(
                    f"Calibration gap by {attribute}, {model.name} (predicted minus observed, "
                    f"points, 95% CI): {gaps}."
                )
    lines.append(
        "Impossibility: with different base rates, calibration within groups and equal "
        "error rates cannot both hold (Chouldechova 2017; Kleinberg et al. 2016); race is "
        "never used to equalise them. See fairness/report.html."
    )
    return lines


def _run_fairness_audit(
    config: RiskTrainConfig, splits: _Splits, compared: _Compared
) -> tuple[FairnessAudit, list[str]] | None:
    groups = _groups(splits.test, config)
    if not groups:
        return None
    audit = audit_fairness(
        splits.test[config.target].to_numpy(dtype=int),
        compared.scored,
        groups,
        bands=config.bands,
        banded=[DESIST],
        config=config.fairness,
        seed=config.evaluation.bootstrap_seed,
    )
    summary = _fairness_summary(audit, compared, config)
    figures = {}
    for attribute in groups:
        figures[f"Error rates by {attribute}"] = plot_error_rates(audit, attribute)
        figures[f"Calibration within groups of {attribute}"] = plot_calibration_by_decile(
            audit, attribute, config.fairness.min_group_size
        )
    for name, figure in figures.items():
        _log_figure(figure, f"fairness_{_slug(name)}")
    for name in (
        "by_group",
        "calibration_by_decile",
        "calibration_by_band",
        "ratios",
        "base_rates",
    ):
        table: pd.DataFrame = getattr(audit, name)
        mlflow.log_text(table.to_csv(index=False), f"fairness/{name}.csv")
    mlflow.log_text(
        render_report(audit, figures, summary, f"Fairness audit: {config.registered_model}"),
        "fairness/report.html",
    )
    metrics = {
        f"test_fpr_ratio_{_slug(r.model)}_{i}": float(r.value)
        for i, r in enumerate(audit.ratios[audit.ratios["metric"] == "fpr"].itertuples())
        if np.isfinite(r.value)
    }
    mlflow.log_metrics(metrics)
    return audit, summary


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
        # Refused before anything is read or fitted (the config check, again, for
        # configs built in code with model_construct).
        check_leakage(config.features, config.audit_only, config.adapter)
        mlflow.log_params(config_params(config))
        progress(f"Loading and validating {config.dataset.name} ...")
        require = [config.target]
        if config.incumbent is not None:
            require.append(config.incumbent.field)
        data = load_job_data(config.dataset, require, config.adapter)
        log_job_data(data, config.features, config.target, is_file=config.dataset.path is not None)
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
        screened = screen_single_features(config, splits.train, progress)
        fitted = [
            _fit_family(config, s, data, splits, experiment_id, progress) for s in config.models
        ]
        best = max(fitted, key=lambda f: f.result.selection_roc_auc)
        chosen, model, evaluation = best.result, best.model, best.evaluation
        comparison = pd.DataFrame(
            [
                {
                    "model": f.family,
                    "selection_roc_auc": f.selection_roc_auc,
                    **{k: f.test[k] for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high")},
                    "ece": f.test["ece"],
                    "brier": f.test["brier"],
                    "fit_seconds": f.fit_seconds,
                }
                for f in (fit.result for fit in fitted)
            ]
        )
        mlflow.log_table(comparison, "tables/family_comparison.json")
        mlflow.log_metrics(evaluation.metrics("test_"))
        gap = evaluation.max_calibration_gap(config.gates.min_group_size)
        mlflow.log_metric("test_max_group_calibration_gap", gap)
        p_test = model.predict_proba(splits.test)[:, 1]
        noise_floor, noise_p = ece_noise_test(
            splits.test[config.target].to_numpy(dtype=int),
            p_test,
            seed=config.evaluation.bootstrap_seed,
        )
        mlflow.log_metrics({"test_ece_noise_floor": noise_floor, "test_ece_noise_p": noise_p})
        mlflow.set_tag("desist.selected_family", chosen.family)
        family_rows = [
            {
                "model": f"{DESIST} {f.family}" + (" (selected)" if f is chosen else ""),
                **{k: f.test[k] for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high")},
                "ece": f.test["ece"],
                "brier": f.test["brier"],
            }
            for f in (fit.result for fit in fitted)
        ]
        progress("Comparing with the incumbent and baselines on the same test rows ...")
        compared = _compare(config, splits, best, family_rows)
        _log_comparison(compared, splits.test[config.target].to_numpy(dtype=int))
        progress("Auditing fairness ...")
        audited = _run_fairness_audit(config, splits, compared)
        summary = [] if audited is None else audited[1]
        notes = [
            f"Expected calibration error of a perfectly calibrated score on these "
            f"{len(splits.test):,} test people is about {noise_floor:.3f} (sampling noise "
            f"alone); read the ECE of {evaluation.headline['ece']:.3f} against it: noise "
            f"alone reaches it in {noise_p:.0%} of draws. With the noise taken out "
            f"(debiased, root-mean-square) the calibration error is "
            f"{evaluation.headline['ece_debiased']:.3f}."
        ]
        card = _model_card(
            config,
            data,
            splits,
            chosen.family,
            parent.info.run_id,
            evaluation,
            None,
            compared.table,
            notes,
            summary,
        )
        _log_card(card)
        # Registration is the run's last step: a run that fails earlier registers nothing.
        where = "out-of-fold" if config.cross_fitted else "calibration-split"
        progress(f"Selected {chosen.family} (best {where} AUC); registering ...")
        version, digest = _register(
            config, data, parent.info.run_id, chosen, evaluation, best.model_uri
        )
        mlflow.set_tag("desist.registered_version", version)
    return TrainResult(
        run_id=parent.info.run_id,
        experiment_id=experiment_id,
        registered_model=config.registered_model,
        version=version,
        model_uri=f"models:/{config.registered_model}/{version}",
        selected_family=chosen.family,
        families=tuple(fit.result for fit in fitted),
        test=evaluation.headline,
        max_group_calibration_gap=gap,
        artifact_digest=digest,
        seconds=time.perf_counter() - started,
        ece_noise_floor=noise_floor,
        ece_noise_p=noise_p,
        comparisons={str(r.model): float(r.roc_auc) for r in compared.table.itertuples()},
        auc_gains=compared.gains,
        fairness_summary=tuple(summary),
        single_feature_auc=dict(zip(screened["feature"], screened["auc"], strict=True)),
    )
