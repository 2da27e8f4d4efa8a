from __future__ import annotations

import html
import re
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.bands import RiskBands
from pipeline.evaluation import Evaluation, evaluate_scores
from pipeline.model_card import JUDGEMENT_SENTENCE, ModelCard, render_html, render_markdown

SECTIONS = [
    "Intended use",
    "Data",
    "Features",
    "Risk bands",
    "Performance on the test split",
    "Per-group results",
    "Comparisons",
    "Fairness",
    "Limits",
]


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    rng = np.random.default_rng(31)
    n = 3_000
    p = rng.beta(2, 4, n)
    y = (rng.random(n) < p).astype(int)
    sex = rng.choice(np.array(["male", "female"]), n, p=[0.8, 0.2])
    ethnicity = rng.choice(np.array(["asian", "black", "white", None], dtype=object), n)
    return evaluate_scores(
        y, p, bands=RiskBands(), groups={"sex": sex, "ethnicity": ethnicity}, n_bootstrap=50
    )


def make_card(evaluation: Evaluation, **changes: Any) -> ModelCard:
    card = ModelCard(
        model_name="desist-risk",
        version="3",
        family="logistic regression",
        trained_at="2025-01-31T12:00:00+00:00",
        run_id="abc123",
        dataset_name="synthetic cohort",
        dataset_source=".desist/cohort/synthetic.parquet",
        dataset_digest="sha256:0f1e2d",
        n_train=12_000,
        n_calibration=3_000,
        n_test=3_000,
        target="reoffended_12m",
        target_description="a new sanction within 12 months",
        features=["age", "total_sanctions", "drug_misuse"],
        audit_only=["ethnicity", "sex"],
        bands=RiskBands(),
        evaluation=evaluation,
        comparisons=None,
        notes=["Synthetic data only."],
        fairness_summary=["Calibration gaps are within 2 points for every group."],
    )
    return replace(card, **changes)


def headings(markdown: str) -> list[str]:
    return re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)


def test_markdown_has_the_sections_in_order(evaluation: Evaluation) -> None:
    comparisons = pd.DataFrame(
        {
            "model": ["static only"],
            "roc_auc": [0.65],
            "roc_auc_ci_low": [0.63],
            "roc_auc_ci_high": [0.67],
            "ece": [0.02],
            "brier": [0.2],
        }
    )
    markdown = render_markdown(make_card(evaluation, comparisons=comparisons))
    assert markdown.startswith("# Model card: desist-risk (version 3)")
    assert headings(markdown) == SECTIONS
    assert "| static only | 0.650 (0.630 to 0.670) | 0.020 | 0.200 |" in markdown


def test_a_cross_fitted_card_says_how_it_was_calibrated(evaluation: Evaluation) -> None:
    words = "Platt scaling learned from 5-fold out-of-fold scores"
    markdown = render_markdown(make_card(evaluation, n_calibration=0, calibration=words))
    assert f"| calibration | {words} |" in markdown
    assert "calibration people" not in markdown


def test_a_benchmark_card_states_its_own_purpose_and_the_same_limits(
    evaluation: Evaluation,
) -> None:
    purpose = "A benchmark on Broward County records; not for scoring anyone today."
    markdown = render_markdown(make_card(evaluation, intended_use=purpose))
    assert purpose in markdown and "Integrated Offender Management" not in markdown
    assert "It is not for sentencing, bail or remand decisions" in markdown
    assert "Integrated Offender Management" in render_markdown(make_card(evaluation))


def test_comparisons_section_only_when_there_are_comparisons(evaluation: Evaluation) -> None:
    assert "Comparisons" not in headings(render_markdown(make_card(evaluation)))
    empty = pd.DataFrame(columns=["model", "roc_auc", "roc_auc_ci_low", "roc_auc_ci_high"])
    with pytest.raises(ValueError, match="ece, brier"):
        make_card(evaluation, comparisons=empty)


def test_markdown_states_intended_use_and_limits(evaluation: Evaluation) -> None:
    markdown = render_markdown(make_card(evaluation))
    assert JUDGEMENT_SENTENCE in markdown
    assert (
        "This score supports, and does not replace, a practitioner's professional judgement."
        in markdown
    )
    assert "not for sentencing, bail" in markdown
    limits = markdown.split("## Limits")[1]
    assert "synthetic cohort" in limits
    assert "also reflects policing" in limits
    assert "drift" in limits
    assert "wide intervals" in limits
    assert "- Synthetic data only." in limits


def test_markdown_reports_data_bands_and_performance(evaluation: Evaluation) -> None:
    markdown = render_markdown(make_card(evaluation))
    for text in ("sha256:0f1e2d", "12,000", "reoffended_12m: a new sanction within 12 months"):
        assert text in markdown
    for band in RiskBands().describe():
        assert f"- {band}" in markdown
    head = evaluation.headline
    interval = (
        f"{head['roc_auc']:.3f} ({head['roc_auc_ci_low']:.3f} to {head['roc_auc_ci_high']:.3f})"
    )
    assert f"| ROC AUC | {interval} |" in markdown
    assert f"| calibration error, noise removed | {head['ece_debiased']:.3f} |" in markdown
    assert "| calibration people | 3,000 |" in markdown
    for band in ("low", "medium", "high", "very high"):
        assert re.search(rf"^\| {band} \| [\d,]+ \|", markdown, flags=re.MULTILINE)


def test_markdown_has_a_row_per_group_with_intervals(evaluation: Evaluation) -> None:
    markdown = render_markdown(make_card(evaluation))
    for row in evaluation.group_table.itertuples(index=False):
        gap = (
            f"{100 * row.calibration_gap:+.1f} ({100 * row.calibration_gap_ci_low:+.1f} "
            f"to {100 * row.calibration_gap_ci_high:+.1f})"
        )
        line = next(
            line
            for line in markdown.splitlines()
            if line.startswith(f"| {row.attribute} | {row.group} |")
        )
        assert f"{row.roc_auc:.3f} ({row.roc_auc_ci_low:.3f} to {row.roc_auc_ci_high:.3f})" in line
        assert line.endswith(f"| {gap} |")
    assert "| ethnicity | not recorded |" in markdown


def test_features_section_explains_ethnicity_and_sex(evaluation: Evaluation) -> None:
    without_sex = render_markdown(make_card(evaluation)).split("## Features")[1]
    without_sex = without_sex.split("## Risk bands")[0]
    assert "- age: Age in whole years" in without_sex
    assert "Ethnicity and race are never features" in without_sex
    assert "audit only: ethnicity, sex" in without_sex
    assert "deliberately" not in without_sex
    with_sex = render_markdown(
        make_card(evaluation, features=["age", "sex"], audit_only=["ethnicity", "sex"])
    )
    assert "audit only: ethnicity." in with_sex  # sex is audited but not audit-only here
    assert "Sex is used as a feature deliberately" in with_sex
    assert "miscalibrates scores for women" in with_sex


def test_a_card_cannot_list_ethnicity_as_a_feature(evaluation: Evaluation) -> None:
    with pytest.raises(ValueError, match="ethnicity"):
        make_card(evaluation, features=["age", "ethnicity"])


def test_fairness_section_falls_back_when_empty(evaluation: Evaluation) -> None:
    markdown = render_markdown(make_card(evaluation, fairness_summary=[]))
    assert "No fairness summary was recorded" in markdown.split("## Fairness")[1]
    markdown = render_markdown(make_card(evaluation))
    assert "- Calibration gaps are within 2 points" in markdown


def test_markdown_tables_survive_pipes_and_unregistered_models(evaluation: Evaluation) -> None:
    markdown = render_markdown(make_card(evaluation, version=None, dataset_name="a|b"))
    assert markdown.startswith("# Model card: desist-risk (not yet registered)")
    assert "| dataset | a\\|b |" in markdown


def test_html_is_self_contained_and_escapes_notes(evaluation: Evaluation) -> None:
    page = render_html(make_card(evaluation, notes=["<script>alert('x')</script> & more"]))
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page and "<table>" in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert not re.search(r"(src|href)=", page)  # nothing fetched from elsewhere
    text = html.unescape(page)
    assert JUDGEMENT_SENTENCE in text
    assert re.findall(r"<h2>(.+?)</h2>", page) == [s for s in SECTIONS if s != "Comparisons"]
    for band in RiskBands().describe():
        assert f"<li>{band}</li>" in page
    assert page.count("<tr>") == page.count("</tr>")


def test_a_known_family_is_described_and_an_unknown_one_shown_as_named(
    evaluation: Evaluation,
) -> None:
    blend = render_markdown(make_card(evaluation, family="average"))
    assert "| model family | average: the mean log-odds of member models" in blend
    assert "| model family | logistic regression |" in render_markdown(make_card(evaluation))


def test_a_group_below_the_reporting_minimum_is_too_few_to_judge(evaluation: Evaluation) -> None:
    text = render_markdown(make_card(evaluation, min_group_size=10_000))
    assert "too few to judge (n = " in text
    assert not re.search(r"\| sex \| female \| [\d,]+ \| 0\.\d{3} \(", text)


def test_the_registered_card_shows_the_calibration_gate_and_its_reports(
    evaluation: Evaluation,
) -> None:
    from pipeline.calibration_checks import CalibrationGateConfig, evaluate_calibration_gate

    rng = np.random.default_rng(3)
    p = rng.beta(2, 4, 1_000)
    y = (rng.random(1_000) < p).astype(int)
    gate = evaluate_calibration_gate(y, p, CalibrationGateConfig(noise_draws=199))
    links = (("fairness report", "runs:/abc/fairness/report.html"),)
    text = render_markdown(make_card(evaluation, gate=gate, links=links))
    assert headings(text)[-3:] == ["Calibration gate", "Reports", "Limits"]
    assert "spiegelhalter_z" in text and "runs:/abc/fairness/report.html" in text
    assert ("Judged on the test split: passed" in text) == gate.passed
