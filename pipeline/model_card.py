"""Model cards: what a trained risk model is for, what it was trained on, how well it does.

A card is built from values the training job already has (its dataset, its
:class:`~pipeline.evaluation.Evaluation`) and rendered to Markdown or to a
self-contained HTML page. Both renderings come from one list of
:class:`~pipeline.document.Section`, so they always say the same thing in the
same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from data.schema import FIELDS_BY_NAME, NEVER_FEATURES
from models.bands import RiskBands
from models.risk import FAMILY_DESCRIPTIONS
from pipeline.calibration_checks import CalibrationGateResult
from pipeline.document import (
    Block,
    Bullets,
    Section,
    Table,
    count,
    html_document,
    markdown_document,
    number,
    percent,
    points_with_interval,
    with_interval,
)
from pipeline.evaluation import Evaluation

JUDGEMENT_SENTENCE = (
    "This score supports, and does not replace, a practitioner's professional judgement."
)

COMPARISON_COLUMNS: tuple[str, ...] = (
    "model",
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "ece",
    "brier",
)


@dataclass(frozen=True, eq=False)
class ModelCard:
    """Everything a model card says about one trained model.

    Attributes
    ----------
    model_name
        Registered model name.
    version
        Registry version, or None before registration.
    family
        Model family, e.g. ``"logistic regression"``.
    trained_at
        When training finished (ISO 8601).
    run_id
        MLflow run that produced the model.
    dataset_name, dataset_source, dataset_digest
        The training data: its name, where it came from and its content digest.
    n_train, n_calibration, n_test
        People in each split.
    target
        Outcome column, e.g. ``reoffended_12m``.
    target_description
        The outcome in plain words.
    features
        Model features in order.
    audit_only
        Protected attributes kept for the fairness audit and not used as features.
    bands
        Risk bands the scores are reported in.
    evaluation
        Evaluation on the test split.
    comparisons
        Other scores evaluated on the same test rows, columns as in
        :data:`COMPARISON_COLUMNS`; None or empty when there are none.
    notes
        Limits and warnings specific to this model.
    fairness_summary
        Findings of the fairness audit, one line each; may be empty.
    calibration
        How probabilities were calibrated, in words; empty for "on the
        calibration split" without further detail.
    intended_use
        What this model is for, when not desist's own purpose (e.g. a
        benchmark on another country's records); the limits on sentencing
        and on the practitioner's judgement are stated either way.
    gate
        The calibration gate's record (the registered version's card).
    links
        ``(label, runs:/ URI)`` of the reports the card points to (fairness
        report, comparison, gate record).
    min_group_size
        Groups with fewer people show "too few to judge (n = k)", not figures.

    Raises
    ------
    ValueError
        If a feature may never be a model feature (ethnicity, the outcome,
        referrals or the identifier), since the card would then misstate how
        the model works; or if ``comparisons`` lacks a column.
    """

    model_name: str
    version: str | None
    family: str
    trained_at: str
    run_id: str
    dataset_name: str
    dataset_source: str
    dataset_digest: str
    n_train: int
    n_calibration: int
    n_test: int
    target: str
    target_description: str
    features: list[str]
    audit_only: list[str]
    bands: RiskBands
    evaluation: Evaluation
    comparisons: pd.DataFrame | None
    notes: list[str]
    fairness_summary: list[str]
    calibration: str = ""
    intended_use: str = ""
    gate: CalibrationGateResult | None = None
    links: tuple[tuple[str, str], ...] = ()
    min_group_size: int = 0

    def __post_init__(self) -> None:
        """Refuse a card whose statements about features would be false."""
        forbidden = [f for f in self.features if f in NEVER_FEATURES]
        if forbidden:
            raise ValueError(f"never-feature fields listed as features: {', '.join(forbidden)}")
        if self.comparisons is not None:
            missing = [c for c in COMPARISON_COLUMNS if c not in self.comparisons.columns]
            if missing:
                raise ValueError(f"comparisons lacks the columns {', '.join(missing)}")


def render_markdown(card: ModelCard) -> str:
    """Render the card as Markdown.

    The sections are Intended use, Data, Features, Risk bands, Performance on
    the test split, Per-group results, Comparisons (when there are any),
    Fairness and Limits. Text is inserted as given; table cells have ``|``
    escaped and line breaks flattened.
    """
    return markdown_document(_title(card), _sections(card))


def render_html(card: ModelCard) -> str:
    """Render the card as one self-contained HTML page.

    Inline CSS and no external resources; the same sections as
    :func:`render_markdown`. All text is escaped with :func:`html.escape`, so
    notes cannot inject markup.
    """
    return html_document(_title(card), _sections(card), _CSS)


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:60rem;"
    "margin:2rem auto;padding:0 1rem;line-height:1.5;color:#222}"
    "h1{border-bottom:2px solid #0072B2;padding-bottom:.3rem}"
    "h2{margin-top:2rem;color:#0072B2}"
    "table{border-collapse:collapse;margin:.5rem 0 1rem}"
    "th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}"
    "th{background:#f2f2f2}"
)


def _title(card: ModelCard) -> str:
    version = f"version {card.version}" if card.version else "not yet registered"
    return f"Model card: {card.model_name} ({version})"


def _sections(card: ModelCard) -> list[Section]:
    sections = [
        _intended_use(card),
        _data(card),
        _features(card),
        Section("Risk bands", [Bullets(card.bands.describe())]),
        _performance(card),
        _groups(card),
    ]
    if card.comparisons is not None and len(card.comparisons):
        sections.append(_comparisons(card.comparisons))
    sections += [_fairness(card)]
    if card.gate is not None:
        sections.append(_gate(card.gate))
    if card.links:
        sections.append(Section("Reports", [Table(("report", "where"), list(card.links))]))
    sections.append(_limits(card))
    return sections


def _gate(gate: CalibrationGateResult) -> Section:
    verdict = "passed" if gate.passed else "FAILED"
    rows = [
        (c.scope, c.check, count(c.n), number(c.value), c.limit, c.status, c.detail)
        for c in gate.checks
    ]
    return Section(
        "Calibration gate",
        [
            f"Judged on the test split: {verdict}. Tests whose false-alarm rate is known, "
            f"sharing a family-wise rate of {gate.false_alarm_rate:g} (each at "
            f"{gate.per_test_alpha:.3g}); groups too small to judge are not judged. "
            "Promotion also checks the AUC against the champion and the audit-only fields; "
            "its decision is on the version (desist.promotion) and in gates.md.",
            Table(("scope", "check", "people", "figure", "limit", "result", "detail"), rows),
        ],
    )


def _intended_use(card: ModelCard) -> Section:
    purpose = card.intended_use or (
        "This model estimates the probability that a person re-offends, with the outcome "
        "defined under Data. It supports offender-management practitioners (police, "
        "probation and partners in Integrated Offender Management) in deciding how "
        "intensive supervision should be and which support to offer."
    )
    return Section(
        "Intended use",
        [
            purpose,
            "It is not for sentencing, bail or remand decisions, nor for any decision made "
            "without a practitioner.",
            JUDGEMENT_SENTENCE,
        ],
    )


def _data(card: ModelCard) -> Section:
    total = card.n_train + card.n_calibration + card.n_test
    return Section(
        "Data",
        [
            Table(
                ("item", "value"),
                [
                    ("dataset", card.dataset_name),
                    ("source", card.dataset_source),
                    ("digest", card.dataset_digest),
                    ("training people", f"{card.n_train:,}"),
                    *(
                        [("calibration people", f"{card.n_calibration:,}")]
                        if card.n_calibration
                        else []
                    ),
                    *([("calibration", card.calibration)] if card.calibration else []),
                    ("test people", f"{card.n_test:,}"),
                    ("total", f"{total:,}"),
                    ("target", f"{card.target}: {card.target_description}"),
                    ("model family", _family(card.family)),
                    ("trained at", card.trained_at),
                    ("MLflow run", card.run_id),
                ],
            )
        ],
    )


def _family(family: str) -> str:
    described = FAMILY_DESCRIPTIONS.get(family)
    return f"{family}: {described}" if described else family


def _features(card: ModelCard) -> Section:
    items = []
    for name in card.features:
        spec = FIELDS_BY_NAME.get(name)
        items.append(f"{name}: {spec.description}" if spec else name)
    # A caller may list every audited attribute, including sex when it is also a
    # feature; calling that "audit only" would contradict the feature list.
    audit_only = [name for name in card.audit_only if name not in card.features]
    audit = ", ".join(audit_only) if audit_only else "none"
    blocks: list[Block] = [
        f"The model uses {len(card.features)} features:",
        Bullets(items),
        "Ethnicity and race are never features: they are kept only to audit the scores for "
        "fairness. "
        f"Protected attributes used for the audit only: {audit}.",
    ]
    if "sex" in card.features:
        blocks.append(
            "Sex is used as a feature deliberately. Women re-offend less often than men with "
            "the same record, so leaving sex out miscalibrates scores for women: a sex-blind "
            "model overstates their risk."
        )
    return Section("Features", blocks)


_HEADLINE_ROWS: tuple[tuple[str, str, str], ...] = (
    (
        "pr_auc",
        "PR AUC (average precision)",
        "precision averaged over every threshold; compare with the base rate",
    ),
    ("brier", "Brier score", "mean squared error of the probability; lower is better"),
    ("log_loss", "log loss", "lower is better"),
    (
        "ece",
        "expected calibration error",
        "mean gap between predicted and observed rates over 10 equal-size groups",
    ),
    (
        "ece_debiased",
        "calibration error, noise removed",
        "the same groups with their sampling noise subtracted (root-mean-square, debiased)",
    ),
    (
        "calibration_slope",
        "calibration slope",
        "1 is ideal; above 1 scores are too timid, below 1 too extreme",
    ),
    ("calibration_intercept", "calibration intercept", "0 is ideal"),
    ("base_rate", "base rate", "share of test people who re-offended"),
)


def _performance(card: ModelCard) -> Section:
    head = card.evaluation.headline
    rows = [
        (
            "ROC AUC",
            with_interval(head["roc_auc"], head["roc_auc_ci_low"], head["roc_auc_ci_high"]),
            "chance that someone who re-offended scored above someone who did not",
        ),
        *((label, number(head[key]), meaning) for key, label, meaning in _HEADLINE_ROWS),
        ("people", count(head["n"]), "test split"),
    ]
    bands = [
        (
            str(r.band),
            count(r.n),
            percent(r.share),
            percent(r.mean_predicted),
            percent(r.observed_rate),
        )
        for r in card.evaluation.band_table.itertuples(index=False)
    ]
    return Section(
        "Performance on the test split",
        [
            "Intervals are 95% bootstrap percentile intervals.",
            Table(("metric", "value", "meaning"), rows),
            Table(("band", "people", "share", "mean predicted", "observed rate"), bands),
        ],
    )


def _groups(card: ModelCard) -> Section:
    table = card.evaluation.group_table
    if not len(table):
        return Section("Per-group results", ["No groups were evaluated."])
    rows = [
        (str(r.attribute), str(r.group), count(r.n), f"too few to judge (n = {int(r.n)})")
        + ("",) * 4
        if r.n < card.min_group_size
        else (
            str(r.attribute),
            str(r.group),
            count(r.n),
            with_interval(r.roc_auc, r.roc_auc_ci_low, r.roc_auc_ci_high),
            number(r.ece),
            percent(r.mean_predicted),
            percent(r.observed_rate),
            points_with_interval(
                r.calibration_gap, r.calibration_gap_ci_low, r.calibration_gap_ci_high
            ),
        )
        for r in table.itertuples(index=False)
    ]
    return Section(
        "Per-group results",
        [
            "Calibration gap is mean predicted minus observed rate in percentage points: "
            "above zero the group's risk is overstated, below zero understated. Intervals are "
            "95% bootstrap percentile intervals; AUC is n/a where a group has only one outcome.",
            Table(
                (
                    "attribute",
                    "group",
                    "people",
                    "ROC AUC (95% CI)",
                    "ECE",
                    "mean predicted",
                    "observed rate",
                    "calibration gap, points (95% CI)",
                ),
                rows,
            ),
        ],
    )


def _comparisons(comparisons: pd.DataFrame) -> Section:
    rows = [
        (
            str(r.model),
            with_interval(r.roc_auc, r.roc_auc_ci_low, r.roc_auc_ci_high),
            number(r.ece),
            number(r.brier),
        )
        for r in comparisons.itertuples(index=False)
    ]
    return Section(
        "Comparisons",
        [
            "Other scores evaluated on the same test people.",
            Table(("model", "ROC AUC (95% CI)", "ECE", "Brier score"), rows),
        ],
    )


def _fairness(card: ModelCard) -> Section:
    if card.fairness_summary:
        return Section("Fairness", [Bullets(list(card.fairness_summary))])
    return Section("Fairness", ["No fairness summary was recorded for this model."])


def _limits(card: ModelCard) -> Section:
    return Section(
        "Limits",
        [
            Bullets(
                [
                    f"The model was trained on {card.dataset_name} ({card.dataset_source}) "
                    "and reflects the people, practice and period in that data.",
                    "Re-offending is measured as a new sanction, which also reflects policing: "
                    "where and whom the police stop, charge and caution.",
                    "Calibration can drift as practice, policing and the population change; "
                    "observed rates should be checked against predictions regularly.",
                    "Groups with few people have wide intervals; their results are uncertain.",
                    *card.notes,
                ]
            )
        ],
    )
