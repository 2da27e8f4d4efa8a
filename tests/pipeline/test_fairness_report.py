from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from matplotlib.figure import Figure

from pipeline.fairness import IMPOSSIBILITY, FairnessAudit
from pipeline.fairness_report import render_report, wide_table
from tests.support.audits import model_and_tool_audit


@pytest.fixture(scope="module")
def audit() -> FairnessAudit:
    return model_and_tool_audit()


def test_wide_table_reads_each_figure_with_its_interval(audit: FairnessAudit) -> None:
    table = wide_table(audit)
    assert list(table.columns) == [
        "attribute",
        "group",
        "n",
        "metric",
        "operating_point",
        "model",
        "value (95% CI)",
    ]
    assert len(table) == len(audit.by_group)
    large = table[(table["group"] == "a") & (table["metric"] == "false positive rate")]
    assert large["value (95% CI)"].str.fullmatch(r"\d\.\d{3} \(\d\.\d{3} to \d\.\d{3}\)").all()
    # Below the reporting minimum: its size, never an AUC of 1.000 or a rate of 0.000.
    tiny = table[table["group"] == "tiny"]["value (95% CI)"]
    assert (tiny == "too few to judge (n = 30)").all()


def test_report_is_one_escaped_page_with_every_table_and_figure(audit: FairnessAudit) -> None:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    page = render_report(audit, {"Rates <by> group": fig}, ["b < a? no"], "Audit & co")
    assert page.startswith("<!DOCTYPE html>") and "<h1>Audit &amp; co</h1>" in page
    assert "<li>b &lt; a? no</li>" in page and IMPOSSIBILITY[:60] in page
    assert '<img alt="Rates &lt;by&gt; group" src="data:image/png;base64,' in page
    headings = [
        "Key figures",
        "How to read these figures",
        "Base rates",
        "Error-rate ratios",
        "Rates &lt;by&gt; group",
        "By group",
        "Calibration within groups, by decile of score",
        "Calibration within groups, by risk band",
    ]
    positions = [page.index(f"<h2>{h}</h2>") for h in headings]
    assert positions == sorted(positions)
    assert page.count("<table>") == 5


def test_the_band_section_only_when_a_model_is_banded(audit: FairnessAudit) -> None:
    unbanded = replace(audit, calibration_by_band=pd.DataFrame([]))
    page = render_report(unbanded, {}, [], "T")
    assert "by risk band" not in page and page.count("<table>") == 4


def test_the_reading_is_written_from_the_data_s_own_groups() -> None:
    from pipeline.fairness import how_to_read

    rates = pd.DataFrame(
        {
            "attribute": ["ethnicity"] * 3 + ["sex"],
            "group": ["white", "black", "mixed", "male"],
            "n": [4_000, 900, 20, 5_000],
            "observed_rate": [0.30, 0.36, 0.9, 0.3],
        }
    )
    text = how_to_read(rates, "ethnicity", 50)
    assert "here, by ethnicity: black 36% against white 30%" in text
    assert "African-American" not in text and "Caucasian" not in text and "mixed" not in text
    assert "ethnicity is never a feature" in text
