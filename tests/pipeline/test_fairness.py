from __future__ import annotations

import math

import numpy as np

from models.bands import RiskBands
from pipeline.comparison import OperatingPoint, ScoredTest
from pipeline.evaluation import evaluate_scores
from pipeline.fairness import IMPOSSIBILITY, audit_fairness
from pipeline.fairness_plots import plot_error_rates
from pipeline.fairness_report import render_report
from tests.support.audits import CONFIG, calibrated_two_groups


def test_a_calibrated_score_has_unequal_error_rates_when_base_rates_differ() -> None:
    y, risk, group = calibrated_two_groups()
    model = ScoredTest("model", risk, risk, (OperatingPoint("p >= 0.5", 0.5),))
    audit = audit_fairness(
        y, [model], {"group": group}, bands=RiskBands(), banded=["model"], config=CONFIG, seed=0
    )
    gap_a = audit.value("model", "group", "a", "calibration_gap")
    gap_b = audit.value("model", "group", "b", "calibration_gap")
    assert abs(gap_a) < 0.03 and abs(gap_b) < 0.03
    ratio = audit.ratio("model", "p >= 0.5")
    assert ratio is not None
    # The impossibility results in miniature: calibrated in both groups, yet b's FPR is higher.
    assert ratio["value"] > 1.3 and ratio["ci_low"] > 1.0
    assert ratio["ci_low"] <= ratio["value"] <= ratio["ci_high"]
    fpr = audit.by_group[(audit.by_group["metric"] == "fpr") & (audit.by_group["group"] == "a")]
    assert fpr["ci_low"].iloc[0] <= fpr["value"].iloc[0] <= fpr["ci_high"].iloc[0]
    # Groups below the minimum size are listed, without intervals.
    tiny = audit.by_group[audit.by_group["group"] == "tiny"]
    assert len(tiny) and tiny["ci_low"].isna().all() and (tiny["n"] == 30).all()
    assert set(audit.calibration_by_band["band"]) <= {"low", "medium", "high", "very high"}
    assert audit.calibration_by_decile.groupby("group")["n"].sum()["a"] == (group == "a").sum()


def test_report_states_the_impossibility_results_and_embeds_figures() -> None:
    y, risk, group = calibrated_two_groups()
    decile = np.ceil(risk * 10)
    models = [
        ScoredTest("model", risk, risk, (OperatingPoint("p >= 0.5", 0.5),)),
        ScoredTest("tool", decile, risk, (OperatingPoint("tool >= 5", 5),)),
    ]
    audit = audit_fairness(
        y, models, {"group": group}, bands=RiskBands(), banded=[], config=CONFIG, seed=0
    )
    assert set(audit.ratios["model"]) == {"model", "tool"}
    assert not math.isnan(audit.value("tool", "group", "a", "fpr", "tool >= 5"))
    page = render_report(audit, {"Error rates": plot_error_rates(audit, "group")}, ["x"], "T")
    assert "Chouldechova" in page and IMPOSSIBILITY[:40] in page
    assert "data:image/png;base64," in page and "<table>" in page


def test_the_audit_and_the_evaluation_give_a_group_figure_one_interval() -> None:
    y, risk, group = calibrated_two_groups()
    model = ScoredTest("model", risk, risk, (OperatingPoint("p >= 0.5", 0.5),))
    audit = audit_fairness(
        y,
        [model],
        {"group": group},
        bands=RiskBands(),
        banded=[],
        config=CONFIG,
        seed=3,
        n_bootstrap=40,
    )
    evaluation = evaluate_scores(
        y, risk, bands=RiskBands(), groups={"group": group}, n_bootstrap=40, seed=3
    )
    table = audit.by_group.set_index(["group", "metric"])
    for row in evaluation.group_table[evaluation.group_table["n"] >= 50].itertuples():
        for metric, low, high in (
            ("roc_auc", row.roc_auc_ci_low, row.roc_auc_ci_high),
            ("calibration_gap", row.calibration_gap_ci_low, row.calibration_gap_ci_high),
        ):
            found = table.loc[(row.group, metric)]
            assert (found["ci_low"], found["ci_high"]) == (low, high)
            assert found["value"] == getattr(row, metric)


def test_a_group_below_the_minimum_keeps_its_size_and_no_figure() -> None:
    y, risk, group = calibrated_two_groups()
    y = y.copy()
    y[:30] = 1  # the tiny group only re-offends: its AUC would read n/a, its FNR 0.0
    model = ScoredTest("model", risk, risk, (OperatingPoint("p >= 0.5", 0.5),))
    audit = audit_fairness(
        y, [model], {"group": group}, bands=RiskBands(), banded=[], config=CONFIG, seed=0
    )
    tiny = audit.by_group[audit.by_group["group"] == "tiny"]
    assert (tiny["n"] == 30).all() and tiny["value"].isna().all()
    assert math.isnan(audit.value("model", "group", "tiny", "fnr", "p >= 0.5"))
    assert audit.min_group_size == CONFIG.min_group_size
    page = render_report(audit, {}, [], "T")
    assert "too few to judge (n = 30)" in page
