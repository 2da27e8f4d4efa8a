from __future__ import annotations

import base64
import html
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from benchmarks.support.configs import small_config
from models.bands import RiskBands
from models.contract.tags import TAG_FAMILY
from models.risk import ScorecardSettings
from pipeline.comparison import OperatingPoint, ScoredTest
from pipeline.config import FairnessConfig
from pipeline.fairness import audit_fairness
from pipeline.jobs import Splits, staged_artifacts
from pipeline.risk_audit import Audited, Compared
from pipeline.risk_record import (
    FAIRNESS_TABLES,
    calibration_words,
    family_run,
    record_audit,
    record_comparison,
    slug,
)
from pipeline.tracking import Tracker
from pipeline.train_risk import TrainResult

RNG = np.random.default_rng(0)
P = RNG.uniform(0.05, 0.95, 1_000)
Y = (RNG.uniform(size=P.size) < P).astype(int)
POINT = (OperatingPoint("p >= 0.5", 0.5),)


def _artifacts(tracker: Tracker, run_id: str) -> set[str]:
    folder = Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, tracking_uri=tracker.tracking_uri)
    )
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_slugs_keep_lower_case_letters_and_digits_only() -> None:
    assert slug("Error rates by Sex (2024)") == "error_rates_by_sex_2024"
    assert slug("  age & priors ") == "age_priors"


def test_the_card_says_how_probabilities_were_calibrated() -> None:
    rows = pd.DataFrame({"x": range(10)})
    split = Splits(rows, rows.iloc[:4], rows.iloc[:2])
    assert calibration_words(small_config(), split) == (
        "smoothed isotonic map learned on the 4 calibration people"
    )
    crossed = small_config(calibration="sigmoid", calibration_folds=3)
    assert calibration_words(crossed, split).startswith(
        "Platt scaling learned from 3-fold out-of-fold scores of all 10 training people"
    )


def test_a_family_run_is_a_tagged_child_run_with_its_settings(tmp_path: Path) -> None:
    tracker = Tracker.for_home(tmp_path / "home")
    experiment_id = tracker.experiment_id("families")
    with (
        tracker.activate(),
        mlflow.start_run(experiment_id=experiment_id) as parent,
        family_run(experiment_id, ScorecardSettings()) as run_id,
    ):
        pass
    run = tracker.get_run(run_id)
    assert run.info.run_name == "scorecard"
    assert run.data.tags[TAG_FAMILY] == "scorecard"
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert run.data.params["model.family"] == "scorecard"


def test_the_comparison_is_logged_as_metrics_a_table_and_roc_curves(tmp_path: Path) -> None:
    other = P * 0.5 + 0.25
    table = pd.DataFrame(
        [
            {"model": "desist", "roc_auc": 0.8, "ece": 0.01},
            {"model": "Tool decile", "roc_auc": 0.7, "ece": float("nan")},
        ]
    )
    compared = Compared(
        (ScoredTest("desist", P, P, POINT), ScoredTest("Tool decile", other, other, POINT)),
        {},
        table,
        {"Tool decile": (0.1, 0.05, 0.15)},
    )
    tracker = Tracker.for_home(tmp_path / "home")
    with (
        tracker.activate(),
        mlflow.start_run(experiment_id=tracker.experiment_id("t")) as run,
        staged_artifacts() as staged,
    ):
        record_comparison(staged, compared, Y)
    metrics = tracker.get_run(run.info.run_id).data.metrics
    assert metrics["test_tool_decile_roc_auc"] == pytest.approx(0.7)
    assert "test_tool_decile_ece" not in metrics  # not finite, not logged
    assert metrics["test_auc_gain_over_tool_decile_ci_high"] == pytest.approx(0.15)
    assert {
        "tables/comparison.json",
        "tables/comparison.csv",
        "plots/roc_comparison.png",
    } <= _artifacts(tracker, run.info.run_id)


def test_the_audit_is_staged_as_figures_tables_and_a_report(tmp_path: Path) -> None:
    groups = {"ethnicity": pd.Series(RNG.choice(["black", "white"], P.size)).astype(object)}
    fairness = FairnessConfig(
        attribute="ethnicity", group="black", reference="white", n_bootstrap=20, min_group_size=20
    )
    result = audit_fairness(
        Y,
        [ScoredTest("desist", P, P, POINT)],
        groups,
        bands=RiskBands(),
        banded=["desist"],
        config=fairness,
        seed=0,
    )
    audited = Audited(result, ["Impossibility: see the report."], ("ethnicity",))
    tracker = Tracker.for_home(tmp_path / "home")
    with (
        tracker.activate(),
        mlflow.start_run(experiment_id=tracker.experiment_id("t")) as run,
        staged_artifacts() as staged,
    ):
        record_audit(staged, audited, min_group_size=20, title="Fairness audit: desist-risk")
    names = _artifacts(tracker, run.info.run_id)
    assert {f"fairness/{name}.csv" for name in FAIRNESS_TABLES} <= names
    assert {
        "fairness/report.html",
        "plots/fairness_error_rates_by_ethnicity.png",
        "plots/fairness_calibration_within_groups_of_ethnicity.png",
    } <= names
    assert "test_fpr_ratio_desist_0" in tracker.get_run(run.info.run_id).data.metrics
    # Each figure is drawn once: the report embeds the very PNG logged beside it.
    client = tracker.client()
    page = Path(client.download_artifacts(run.info.run_id, "fairness/report.html")).read_text()
    for stem in ("error_rates_by_ethnicity", "calibration_within_groups_of_ethnicity"):
        png = Path(client.download_artifacts(run.info.run_id, f"plots/fairness_{stem}.png"))
        assert f'base64,{base64.b64encode(png.read_bytes()).decode()}"' in page


def test_the_card_the_report_and_the_metrics_show_one_interval_per_figure(
    trained: tuple[Tracker, TrainResult],
) -> None:
    """Rendered from one job: desist's group AUC reads the same in its card and its report."""
    tracker, result = trained
    client = tracker.client()
    card = Path(client.download_artifacts(result.run_id, "model_card.md")).read_text()
    report = html.unescape(
        Path(client.download_artifacts(result.run_id, "fairness/report.html")).read_text()
    )
    by_group = pd.read_csv(client.download_artifacts(result.run_id, "fairness/by_group.csv"))
    metrics = client.get_run(result.run_id).data.metrics
    minimum = small_config().fairness.min_group_size
    auc = by_group[(by_group["model"] == "desist") & (by_group["metric"] == "roc_auc")]
    judged, small = auc[auc["n"] >= minimum], auc[auc["n"] < minimum]
    assert len(judged) >= 3 and len(small) >= 1  # the small config has both kinds
    for row in judged.itertuples():
        interval = f"{row.value:.3f} ({row.ci_low:.3f} to {row.ci_high:.3f})"
        card_row = next(
            line
            for line in card.splitlines()
            if line.startswith(f"| {row.attribute} | {row.group} |")
        )
        assert card_row.split(" | ")[3] == interval
        cells = f"<td>{row.attribute}</td><td>{row.group}</td><td>{row.n}</td><td>ROC AUC</td>"
        assert f"{cells}<td>-</td><td>desist</td><td>{interval}</td>" in report
        stem = f"test_group_{slug(row.attribute)}_{slug(row.group)}"
        assert metrics[f"{stem}_roc_auc_ci_low"] == row.ci_low
        assert metrics[f"{stem}_roc_auc_ci_high"] == row.ci_high
    for row in small.itertuples():
        stem = f"test_group_{slug(row.attribute)}_{slug(row.group)}"
        assert f"{stem}_roc_auc" not in metrics and metrics[f"{stem}_n"] == row.n
        assert (
            f"| {row.attribute} | {row.group} | {row.n:,} | too few to judge (n = {row.n})" in card
        )
        assert (
            f"<td>ROC AUC</td><td>-</td><td>desist</td><td>too few to judge (n = {row.n})" in report
        )
    # The version's description quotes the same ratio as the card and the report.
    version = client.get_model_version("desist-risk", result.version)
    ratio_line = next(line for line in result.fairness_summary if "ratio" in line)
    assert ratio_line in (version.description or "") and ratio_line in card and ratio_line in report
