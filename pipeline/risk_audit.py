"""Checks of the risk job: the feature screen, the calibration gate, the comparison, the audit.

Each step computes on the job's splits and returns a typed result; what goes
to MLflow is :mod:`pipeline.risk_record`'s (the screen records its table and
warning through it, because a warning is raised between the two).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from data.errors import LeakageError
from pipeline.calibration_checks import CalibrationGateResult, evaluate_calibration_gate
from pipeline.comparison import (
    OperatingPoint,
    ScoredTest,
    build_baseline,
    level_rates,
    matched_threshold,
    paired_auc_difference,
    single_feature_aucs,
)
from pipeline.config import FairnessConfig, RiskTrainConfig
from pipeline.evaluation import Evaluation
from pipeline.fairness import FairnessAudit, audit_fairness, too_few
from pipeline.jobs import Progress, Splits, silent
from pipeline.risk_families import (
    RecordedFamily,
    Selection,
    audited_groups,
    choice_rows,
    evaluate_on,
)
from pipeline.risk_record import record_leakage_warning, record_single_feature_aucs

#: The model this job trains, as named in comparison and fairness tables.
DESIST = "desist"
#: desist's own operating cut-off: flagged when re-offending is more likely than not.
MORE_LIKELY_THAN_NOT = 0.5


class LeakageWarning(UserWarning):
    """A single feature separates the outcome implausibly well on its own."""


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
    record_single_feature_aucs(table)
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
        record_leakage_warning(message)
        progress(f"WARNING {message}")
    return table


@dataclass(frozen=True, slots=True)
class CalibrationJudged:
    """The calibration gate on the test split, and (cross-fitted) the same checks out of fold.

    The test split decides: its people took no part in fitting or calibrating.
    The out-of-fold record is kept for reviewers only: the calibration map was
    learnt on those very scores, so their slope and z are near 1 and 0 by
    construction (docs/calibration-gate.md).
    """

    test: CalibrationGateResult
    out_of_fold: CalibrationGateResult | None


def judge_calibration(
    config: RiskTrainConfig, splits: Splits, selection: Selection
) -> CalibrationJudged:
    """Run the calibration gate on the chosen family's test scores (and out of fold)."""
    fit = selection.chosen.fit
    test = evaluate_calibration_gate(
        splits.test[config.target].to_numpy(dtype=int),
        fit.test_probability,
        config.calibration_gate,
        audited_groups(splits.test, config.audited_attributes),
    )
    out_of_fold = None
    if config.cross_fitted:
        rows = choice_rows(splits, cross_fitted=True)
        out_of_fold = evaluate_calibration_gate(
            rows[config.target].to_numpy(dtype=int),
            fit.choice_probability,
            config.calibration_gate,
            audited_groups(rows, config.audited_attributes),
        )
    return CalibrationJudged(test, out_of_fold)


@dataclass(frozen=True, eq=False)
class Compared:
    """desist and the scores it is compared with, on the same test rows."""

    scored: tuple[ScoredTest, ...]
    evaluations: dict[str, Evaluation]
    table: pd.DataFrame
    gains: dict[str, tuple[float, float, float]]


def _family_rows(selection: Selection) -> list[dict[str, object]]:
    """Return desist's families as rows of the comparison table, the selected one marked."""
    return [
        {
            "model": f"{DESIST} {f.family}"
            + (" (selected)" if f is selection.chosen.result else ""),
            **{k: f.test[k] for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high")},
            "ece": f.test["ece"],
            "brier": f.test["brier"],
        }
        for f in selection.results
    ]


def compare(config: RiskTrainConfig, splits: Splits, selection: Selection) -> Compared:
    """Score the incumbent and the baselines on desist's test rows, and set operating points."""
    chosen: RecordedFamily = selection.chosen
    y_train = splits.train[config.target].to_numpy(dtype=int)
    y_test = splits.test[config.target].to_numpy(dtype=int)
    p_test = chosen.fit.test_probability
    desist_points = [OperatingPoint(f"p >= {MORE_LIKELY_THAN_NOT:g}", MORE_LIKELY_THAN_NOT)]
    scored: list[ScoredTest] = []
    evaluations: dict[str, Evaluation] = {DESIST: chosen.fit.evaluation}
    rows = _family_rows(selection)
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
        rows_chosen_on = choice_rows(splits, cross_fitted=config.cross_fitted)
        choice_score = rows_chosen_on[incumbent.field].to_numpy(dtype=float)
        rate = float(np.mean(choice_score >= incumbent.cutoff))
        threshold = matched_threshold(chosen.fit.choice_probability, rate)
        desist_points.insert(
            0, OperatingPoint(f"p >= {threshold:.3f} (flags as many as {cut.label})", threshold)
        )
        evaluations[incumbent.name] = evaluate_on(config, splits.test, probability)
    for baseline in config.baselines:
        fitted = build_baseline(baseline.features).fit(splits.train, y_train)
        probability = fitted.predict_proba(splits.test)[:, 1]
        points = (OperatingPoint(f"p >= {MORE_LIKELY_THAN_NOT:g}", MORE_LIKELY_THAN_NOT),)
        scored.append(ScoredTest(baseline.name, probability, probability, points))
        evaluations[baseline.name] = evaluate_on(config, splits.test, probability)
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
    return Compared(tuple(scored), evaluations, pd.DataFrame(rows), gains)


@dataclass(frozen=True, eq=False)
class Audited:
    """The fairness audit on the test split, its key figures in words, the attributes audited."""

    audit: FairnessAudit
    summary: list[str]
    attributes: tuple[str, ...]
    #: The attribute the report's reading is written from: the ratio's, when the data has it.
    attribute: str = ""
    #: desist's own error-rate ratios in words (the version's description quotes them).
    headline: tuple[str, ...] = ()


def ratio_lines(audit: FairnessAudit, model: ScoredTest, fair: FairnessConfig) -> list[str]:
    """Return ``model``'s false positive rate ratio at each of its cut-offs, in words."""
    lines = []
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
    return lines


def fairness_summary(audit: FairnessAudit, compared: Compared, fair: FairnessConfig) -> list[str]:
    """Return the audit's key figures in words, for the model card and the report."""
    lines = [line for model in compared.scored for line in ratio_lines(audit, model, fair)]
    for attribute in dict.fromkeys(audit.by_group["attribute"]):
        for model in compared.scored[:2]:
            rows = audit.by_group[
                (audit.by_group["model"] == model.name)
                & (audit.by_group["attribute"] == attribute)
                & (audit.by_group["metric"] == "calibration_gap")
            ]
            judged = rows[rows["n"] >= audit.min_group_size]
            gaps = ", ".join(
                f"{r.group} {100 * r.value:+.1f} ({100 * r.ci_low:+.1f} to {100 * r.ci_high:+.1f})"
                for r in judged.itertuples()
            )
            small = rows[rows["n"] < audit.min_group_size]
            if len(small):
                gaps += "; " if gaps else ""
                gaps += ", ".join(f"{r.group} {too_few(int(r.n))}" for r in small.itertuples())
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


def audit(
    config: RiskTrainConfig, splits: Splits, compared: Compared, progress: Progress = silent
) -> Audited | None:
    """Audit every compared score's fairness on the test split (None: no attribute recorded).

    The audit resamples each group as the evaluation does (its resample count
    and seed), so desist's group intervals in the report are those of the card.
    """
    groups = audited_groups(splits.test, config.audited_attributes)
    if not groups:
        return None
    result = audit_fairness(
        splits.test[config.target].to_numpy(dtype=int),
        compared.scored,
        groups,
        bands=config.bands,
        banded=[DESIST],
        config=config.fairness,
        seed=config.evaluation.bootstrap_seed,
        n_bootstrap=config.evaluation.n_bootstrap,
        progress=progress,
    )
    attribute = (
        config.fairness.attribute if config.fairness.attribute in groups else next(iter(groups))
    )
    summary = fairness_summary(result, compared, config.fairness)
    headline = tuple(ratio_lines(result, compared.scored[0], config.fairness))
    return Audited(result, summary, tuple(groups), attribute, headline)
