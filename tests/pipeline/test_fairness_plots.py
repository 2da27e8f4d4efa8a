from __future__ import annotations

import pytest

from pipeline.fairness import FairnessAudit
from pipeline.fairness_plots import plot_calibration_by_decile, plot_error_rates
from tests.support.audits import model_and_tool_audit


@pytest.fixture(scope="module")
def audit() -> FairnessAudit:
    return model_and_tool_audit()


def test_error_rates_have_a_panel_per_rate_and_a_series_per_model_and_cut_off(
    audit: FairnessAudit,
) -> None:
    fig = plot_error_rates(audit, "group")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["false positive rate", "false negative rate", "selection rate (flagged)"]
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["model (p >= 0.5)", "tool (tool >= 5)"]
    # A group below the reporting minimum is named, with no points: too few to judge.
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [
        "a",
        "b",
        "tiny: too few to judge (n = 30)",
    ]
    assert "95% intervals" in fig.get_suptitle()


def test_calibration_has_a_panel_per_model_and_leaves_out_small_groups(
    audit: FairnessAudit,
) -> None:
    fig = plot_calibration_by_decile(audit, "group", min_n=100)
    assert [ax.get_title() for ax in fig.axes] == ["model", "tool"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(legend) == 2 and all(not text.startswith("tiny") for text in legend)
    everyone = plot_calibration_by_decile(audit, "group", min_n=1)
    assert len(everyone.axes[0].get_legend().get_texts()) == 3
