"""What the risk job records in MLflow.

Each family's run, the parent run, the comparison, the fairness audit and
the model cards.

Computation happens before these functions are called (:mod:`pipeline.risk_families`,
:mod:`pipeline.risk_audit`); here results become metrics, parameters, tags and
artifacts. Metrics go in one ``log_metrics`` per step, and files written with
``log_figure``/``log_text`` before are staged and logged with one
``log_artifacts`` per folder, at the same paths with the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd

from data.schema import FIELDS_BY_NAME
from models.contract.tags import (
    RUN_COMPARISON,
    RUN_FAIRNESS_REPORT,
    RUN_LEAKAGE_WARNING,
    RUN_PARENT,
    RUN_REGISTERED_VERSION,
    RUN_SELECTED_FAMILY,
    TAG_FAMILY,
)
from models.risk import AnySettings
from models.threads import ThreadBudget
from pipeline.calibration_checks import CalibrationGateResult
from pipeline.config import RiskTrainConfig
from pipeline.datasets import JobData
from pipeline.evaluation import Evaluation
from pipeline.fairness_plots import plot_calibration_by_decile, plot_error_rates
from pipeline.fairness_report import render_report
from pipeline.jobs import (
    Splits,
    StagedArtifacts,
    budget_params,
    config_params,
    job_run,
    log_job_model,
    staged_artifacts,
)
from pipeline.model_card import ModelCard, render_html, render_markdown
from pipeline.names import slug
from pipeline.plots import (
    plot_band_table,
    plot_feature_effects,
    plot_group_calibration,
    plot_reliability,
    plot_roc,
    plot_roc_comparison,
    plot_score_distribution,
)
from pipeline.risk_families import FamilyFit, Selection, family_table
from pipeline.tracking import Tracker
from pipeline.version_story import GATES_ARTIFACT, model_description, version_description

if TYPE_CHECKING:
    from pipeline.risk_audit import Audited, CalibrationJudged, Compared

#: The audit's tables, each logged as ``fairness/{name}.csv``.
FAIRNESS_TABLES = (
    "by_group",
    "calibration_by_decile",
    "calibration_by_band",
    "ratios",
    "base_rates",
)


def record_params(config: RiskTrainConfig, budget: ThreadBudget) -> None:
    """Log the whole config and the thread budget as the parent run's parameters (one call)."""
    mlflow.log_params({**config_params(config), **budget_params(budget)})


def record_single_feature_aucs(table: pd.DataFrame) -> None:
    """Log each feature's AUC on its own (``tables/single_feature_auc.json``)."""
    mlflow.log_table(table, "tables/single_feature_auc.json")


def record_leakage_warning(message: str) -> None:
    """Tag the run with a possible-leakage warning."""
    mlflow.set_tag(RUN_LEAKAGE_WARNING, message[:5000])


@contextmanager
def family_run(experiment_id: str, settings: AnySettings) -> Iterator[str]:
    """Open a family's child run, tagged with the family and its settings; yield its id."""
    with job_run(experiment_id, settings.family, nested=True) as run_id:
        mlflow.set_tag(TAG_FAMILY, settings.family)
        mlflow.log_params({f"model.{k}": v for k, v in settings.model_dump().items()})
        yield run_id


def build_model_card(
    config: RiskTrainConfig,
    data: JobData,
    splits: Splits,
    family: str,
    run_id: str,
    evaluation: Evaluation,
    comparisons: pd.DataFrame | None = None,
    notes: list[str] | None = None,
    fairness_summary: list[str] | None = None,
    *,
    version: str | None = None,
    gate: CalibrationGateResult | None = None,
    links: tuple[tuple[str, str], ...] = (),
) -> ModelCard:
    """Build the model card of a family's run, or (with the rest) the registered version's."""
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
        calibration=calibration_words(config, splits),
        intended_use=config.intended_use,
        gate=gate,
        links=links,
        min_group_size=config.fairness.min_group_size,
    )


def parent_links(
    parent_run_id: str, source_run_id: str, *, has_audit: bool
) -> tuple[tuple[str, str], ...]:
    """Where the registered version's card points: the parent run's reports, the gate record."""
    links = [
        (
            "comparison with the incumbent and baselines",
            f"runs:/{parent_run_id}/tables/comparison.csv",
        ),
        ("calibration gate, every figure", f"runs:/{parent_run_id}/tables/calibration_gate.json"),
        ("promotion gates (written by desist promote)", f"runs:/{source_run_id}/{GATES_ARTIFACT}"),
    ]
    if has_audit:
        links.insert(0, ("fairness report", f"runs:/{parent_run_id}/fairness/report.html"))
    return tuple(links)


def record_full_card(
    tracker: Tracker, card: ModelCard, source_run_id: str, parent_run_id: str
) -> None:
    """Log the registered version's card to its source run and the parent run; link the two.

    The source run (the chosen family's) is what the registry shows for the
    version; its tags point at the parent run's fairness report and comparison.
    """
    client = tracker.client()
    for run in (source_run_id, parent_run_id):
        client.log_text(run, render_markdown(card), "model_card.md")
        client.log_text(run, render_html(card), "model_card.html")
    client.set_tag(source_run_id, RUN_PARENT, parent_run_id)
    client.set_tag(source_run_id, RUN_COMPARISON, f"runs:/{parent_run_id}/tables/comparison.csv")
    if any(label == "fairness report" for label, _ in card.links):
        client.set_tag(
            source_run_id, RUN_FAIRNESS_REPORT, f"runs:/{parent_run_id}/fairness/report.html"
        )


def record_descriptions(
    tracker: Tracker,
    config: RiskTrainConfig,
    data: JobData,
    splits: Splits,
    version: str,
    evaluation: Evaluation,
    compared: Compared,
    gate: CalibrationGateResult,
    family: str,
    fairness: Sequence[str] = (),
) -> None:
    """Write the registered model's and the new version's descriptions (read first).

    ``fairness``: the audit's headline figures in words, as the card states them.
    """
    client = tracker.client()
    name = config.registered_model
    client.update_registered_model(name, description=model_description(name, config.intended_use))
    text = version_description(
        family=family,
        dataset=data.name,
        digest=data.sha256,
        n_train=len(splits.train) + len(splits.calibration),
        n_test=len(splits.test),
        headline=evaluation.headline,
        comparisons=compared.gains,
        gate=gate,
        fairness=fairness,
    )
    client.update_model_version(name, version, description=text)


def calibration_words(config: RiskTrainConfig, splits: Splits) -> str:
    """How the job calibrated its probabilities, for the model card."""
    method = "Platt scaling" if config.calibration == "sigmoid" else "smoothed isotonic map"
    if config.cross_fitted:
        return (
            f"{method} learned from {config.calibration_folds}-fold out-of-fold scores of all "
            f"{len(splits.train):,} training people (cross-fitting); the model itself is "
            "fitted on all of them"
        )
    return f"{method} learned on the {len(splits.calibration):,} calibration people"


def noise_note(selection: Selection, n_test: int) -> str:
    """Return the model card's note reading the test ECE against its sampling-noise floor."""
    headline = selection.chosen.fit.evaluation.headline
    return (
        f"Expected calibration error of a perfectly calibrated score on these "
        f"{n_test:,} test people is about {selection.ece_noise_floor:.3f} (sampling noise "
        f"alone); read the ECE of {headline['ece']:.3f} against it: noise "
        f"alone reaches it in {selection.ece_noise_p:.0%} of draws. With the noise taken out "
        f"(debiased, root-mean-square) the calibration error is "
        f"{headline['ece_debiased']:.3f}."
    )


def stage_card(staged: StagedArtifacts, card: ModelCard, stem: str = "model_card") -> None:
    """Stage a model card as Markdown and HTML at the run's top level."""
    staged.text(render_markdown(card), f"{stem}.md")
    staged.text(render_html(card), f"{stem}.html")


def record_family(
    config: RiskTrainConfig, data: JobData, splits: Splits, fit: FamilyFit, run_id: str
) -> str:
    """Log a fitted family in its (active) child run; return its logged model's URI."""
    metrics = {
        **fit.evaluation.metrics("test_", config.fairness.min_group_size),
        **fit.choice_metrics,
        "fit_seconds": fit.fit_seconds,
        "test_max_group_calibration_gap": fit.max_group_calibration_gap,
    }
    y_test = splits.test[config.target].to_numpy(dtype=int)
    probability, evaluation = fit.test_probability, fit.evaluation
    with staged_artifacts() as staged:
        staged.figure(plot_roc(y_test, probability, label="test split"), "roc_curve")
        staged.figure(plot_reliability(y_test, probability), "reliability")
        staged.figure(plot_score_distribution(y_test, probability), "score_distribution")
        staged.figure(plot_band_table(evaluation.band_table), "bands")
        staged.figure(plot_group_calibration(evaluation.group_table), "group_calibration")
        staged.figure(plot_feature_effects(fit.effects), "feature_effects")
        mlflow.log_table(fit.effects, "tables/feature_effects.json")
        mlflow.log_table(evaluation.band_table, "tables/band_table.json")
        mlflow.log_table(evaluation.group_table, "tables/group_table.json")
        staged.text(evaluation.band_table.to_csv(index=False), "tables/band_table.csv")
        staged.text(evaluation.group_table.to_csv(index=False), "tables/group_table.csv")
        card = build_model_card(config, data, splits, fit.family, run_id, evaluation)
        stage_card(staged, card)
    info = log_job_model(fit.model, config.features, splits.test, probabilities=True)
    # After the model, linked to it in the same call: logging the model copies every metric
    # the run already holds to it, one query per metric (about 110 per family).
    mlflow.log_metrics(metrics, model_id=info.model_id)
    return str(info.model_uri)


def record_selection(selection: Selection, *, min_group_size: int = 0) -> None:
    """Log the families compared and the chosen one's test figures in the parent run.

    Groups smaller than ``min_group_size`` (the reporting minimum) log their size only.
    """
    evaluation = selection.chosen.fit.evaluation
    mlflow.log_table(family_table(selection), "tables/family_comparison.json")
    mlflow.log_metrics(
        {
            **evaluation.metrics("test_", min_group_size),
            "test_max_group_calibration_gap": selection.chosen.fit.max_group_calibration_gap,
            "test_ece_noise_floor": selection.ece_noise_floor,
            "test_ece_noise_p": selection.ece_noise_p,
        }
    )
    mlflow.set_tag(RUN_SELECTED_FAMILY, selection.chosen.result.family)


def record_calibration_gate(judged: CalibrationJudged) -> None:
    """Log every check of the calibration gate (``tables/calibration_gate.json``) and its decision.

    Cross-fitted, the out-of-fold checks go to ``tables/calibration_gate_out_of_fold.json``
    (for reviewers; the test split decides).
    """
    mlflow.log_table(pd.DataFrame(judged.test.as_rows()), "tables/calibration_gate.json")
    metrics = {
        "calibration_gate_passed": float(judged.test.passed),
        "calibration_gate_per_test_alpha": judged.test.per_test_alpha,
    }
    if judged.out_of_fold is not None:
        mlflow.log_table(
            pd.DataFrame(judged.out_of_fold.as_rows()),
            "tables/calibration_gate_out_of_fold.json",
        )
        metrics["out_of_fold_calibration_gate_passed"] = float(judged.out_of_fold.passed)
    mlflow.log_metrics(metrics)


def record_comparison(staged: StagedArtifacts, compared: Compared, y_test: np.ndarray) -> None:
    """Log the comparison's metrics and table; stage its table as CSV and its ROC curves."""
    metrics: dict[str, float] = {}
    for other in compared.scored[1:]:
        stem = f"test_{slug(other.name)}"
        row = compared.table[compared.table["model"] == other.name].iloc[0]
        metrics[f"{stem}_roc_auc"] = float(row["roc_auc"])
        metrics[f"{stem}_ece"] = float(row["ece"])
        gain, low, high = compared.gains[other.name]
        metrics[f"test_auc_gain_over_{slug(other.name)}"] = gain
        metrics[f"test_auc_gain_over_{slug(other.name)}_ci_low"] = low
        metrics[f"test_auc_gain_over_{slug(other.name)}_ci_high"] = high
    mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
    mlflow.log_table(compared.table, "tables/comparison.json")
    staged.text(compared.table.to_csv(index=False), "tables/comparison.csv")
    # The incumbent's curve is drawn on its level rates, a monotone map of its deciles.
    curves = {s.name: s.probability for s in compared.scored}
    staged.figure(plot_roc_comparison(y_test, curves), "roc_comparison")


def record_audit(
    staged: StagedArtifacts, audited: Audited, *, min_group_size: int, title: str
) -> None:
    """Stage the audit's figures, tables and report; log its FPR ratios as metrics.

    ``min_group_size`` is the smallest group drawn in calibration figures;
    ``title`` heads the report.
    """
    audit = audited.audit
    figures = {}
    for attribute in audited.attributes:
        figures[f"Error rates by {attribute}"] = plot_error_rates(audit, attribute)
        figures[f"Calibration within groups of {attribute}"] = plot_calibration_by_decile(
            audit, attribute, min_group_size
        )
    # Each figure is drawn once: the report embeds the very PNG staged as plots/fairness_*.png.
    rendered = {name: staged.figure(fig, f"fairness_{slug(name)}") for name, fig in figures.items()}
    for name in FAIRNESS_TABLES:
        table: pd.DataFrame = getattr(audit, name)
        staged.text(table.to_csv(index=False), f"fairness/{name}.csv")
    staged.text(
        render_report(
            audit,
            rendered,
            audited.summary,
            title,
            attribute=audited.attribute,
            min_group_size=min_group_size,
        ),
        "fairness/report.html",
    )
    metrics = {
        f"test_fpr_ratio_{slug(r.model)}_{i}": float(r.value)
        for i, r in enumerate(audit.ratios[audit.ratios["metric"] == "fpr"].itertuples())
        if np.isfinite(r.value)
    }
    mlflow.log_metrics(metrics)


def record_registered(version: str) -> None:
    """Tag the parent run with the version it registered."""
    mlflow.set_tag(RUN_REGISTERED_VERSION, version)
