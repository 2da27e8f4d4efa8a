"""The monitoring report: the figures its data allow, PNGs drawn once, one self-contained page."""

from __future__ import annotations

import pytest

from data.shifts import ShiftConfig
from pipeline.deployment_simulation import (
    monitor_simulated,
    simulate_monitoring_inputs,
    train_simulated_model,
)
from pipeline.monitoring import MonitorResult
from pipeline.monitoring_config import MonitoringConfig
from pipeline.monitoring_report import build_figures, figure_pngs, render_html, summary_lines

CONFIG = MonitoringConfig(n_bootstrap=20)


@pytest.fixture(scope="module")
def result() -> MonitorResult:
    trained = train_simulated_model(rows=4_000, seed=11)
    inputs = simulate_monitoring_inputs(trained, ShiftConfig(), rows=2_000, seed=3)
    return monitor_simulated(CONFIG, trained, inputs)


def test_the_figures_are_those_the_data_allow(result: MonitorResult) -> None:
    figures = build_figures(result, CONFIG)
    assert {"drift", "score_distribution", "reliability", "bands", "overrides"} <= set(figures)
    pngs = figure_pngs(figures)
    assert set(pngs) == set(figures)
    assert all(png.startswith(b"\x89PNG") for png in pngs.values())


def test_the_summary_states_the_counts_and_the_false_alarm_rate(result: MonitorResult) -> None:
    lines = summary_lines(result, CONFIG)
    assert lines[0].startswith(f"{result.n_scored:,} scores of {result.model} version 1")
    assert f"at most {CONFIG.false_alarm_rate:.0%} of runs" in lines[1]
    assert lines[2].startswith("AUC ")  # outcomes matured: the calibration figures follow


def test_the_page_is_self_contained_with_the_figures_given(result: MonitorResult) -> None:
    page = render_html(result, CONFIG, pngs={"drift": b"\x89PNG fake"})
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body></html>")
    assert f"<title>Monitoring: {result.model} version 1</title>" in page
    assert page.count("<img") == 1 and "data:image/png;base64," in page
    assert "<h2>Every check</h2>" in page and "Calibration by band" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from outside
