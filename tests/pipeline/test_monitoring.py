"""The monitor on a small simulated deployment: quiet without a shift, alerting with one."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from data.shifts import ShiftConfig
from pipeline.deployment_simulation import (
    MonitoringInputs,
    TrainedModel,
    monitor_simulated,
    simulate_monitoring_inputs,
    train_simulated_model,
)
from pipeline.monitoring import (
    EXIT_ALERT,
    EXIT_OK,
    TAG_ALERT,
    TAG_ALERTS,
    TAG_LAST_RUN,
    TAG_VERSION,
    MonitorResult,
    assess,
)
from pipeline.monitoring_checks import Check, decide
from pipeline.monitoring_config import MonitoringConfig, load_monitoring_config
from pipeline.monitoring_reference import (
    TAG_REFERENCE,
    load_training_reference,
    log_training_reference,
)
from pipeline.monitoring_report import render_html
from pipeline.tracking import Tracker

REPO = Path(__file__).parents[2]
CONFIG = load_monitoring_config(REPO / "configs" / "monitoring.toml")


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return train_simulated_model(rows=15_000, seed=101)


def _run(
    trained: TrainedModel, shift: ShiftConfig, seed: int = 7, rows: int = 4_000
) -> MonitorResult:
    inputs = simulate_monitoring_inputs(trained, shift, rows=rows, seed=seed)
    return monitor_simulated(CONFIG, trained, inputs)


def test_the_config_file_is_the_default_and_strict(tmp_path: Path) -> None:
    assert MonitoringConfig() == CONFIG
    bad = tmp_path / "m.toml"
    bad.write_text("false_alarm_rate = 0.01\npsi_flor = 0.1\n")
    with pytest.raises(Exception, match="psi_flor"):
        load_monitoring_config(bad)


def test_an_alert_needs_significance_and_size() -> None:
    checks = [
        Check("drift", "a", 0.5, 0.1, 1e-9, "big and sure"),
        Check("drift", "b", 0.05, 0.1, 1e-9, "sure but small"),
        Check("drift", "c", 0.5, 0.1, 0.004, "big, not sure after sharing the rate"),
        Check("drift", "d", 0.5, 0.1, math.nan, "untested"),
    ]
    decided, level = decide(checks, 0.01)
    assert level == pytest.approx(0.01 / 3)
    assert [c.alert for c in decided] == [True, False, False, False]


def test_quiet_without_a_shift(trained: TrainedModel) -> None:
    result = _run(trained, ShiftConfig())
    assert not result.alerted, result.alerts
    assert result.stage == "outcomes"
    assert result.n_scored == result.n_matured == 4_000
    assert result.n_decided == 4_000  # every score has a decision; revisions count once
    assert result.evaluation is not None
    assert 0.6 < result.evaluation.headline["roc_auc"] < 0.8
    assert {"ece_noise_floor", "ece_noise_p", "override_rate"} <= set(result.headline)
    assert set(result.overrides_by_band["band"]) <= {"low", "medium", "high", "very high"}
    assert set(result.overrides_by_group["attribute"]) == {"ethnicity", "sex"}
    assert result.exit_code(fail_on_alert=True) == EXIT_OK


def test_a_higher_reoffending_rate_alerts_on_calibration(trained: TrainedModel) -> None:
    result = _run(trained, ShiftConfig(reoffending_points=0.05), rows=5_000)
    assert result.alerted
    assert any(a.startswith("calibration all") for a in result.alerts)
    # The assessments did not change, so no input drifted.
    assert not any(a.startswith("drift") for a in result.alerts)
    assert result.exit_code(fail_on_alert=True) == EXIT_ALERT
    assert result.exit_code(fail_on_alert=False) == EXIT_OK


def test_older_people_alert_on_age_drift(trained: TrainedModel) -> None:
    result = _run(trained, ShiftConfig(age_shift_sd=0.3))
    assert any(a.startswith("drift age") for a in result.alerts)


def test_before_outcomes_mature_drift_alone(trained: TrainedModel) -> None:
    inputs = simulate_monitoring_inputs(trained, ShiftConfig(age_shift_sd=0.3), rows=2_000, seed=3)
    result = assess(
        CONFIG,
        scores=inputs.scores,
        outcomes=inputs.outcomes,
        decisions=None,
        reference=trained.reference,
        version="1",
        as_of=pd.Timestamp("2025-06-01"),
    )
    assert result.stage == "drift only"
    assert result.n_matured == 0
    assert result.linkage["window still open"] == 2_000
    assert set(result.checks["kind"]) <= {"drift", "missingness", "score_shift"}
    assert any(a.startswith("drift age") for a in result.alerts)
    assert "drift checks alone" in render_html(result, CONFIG)


def test_other_versions_are_left_out(trained: TrainedModel) -> None:
    inputs = simulate_monitoring_inputs(trained, ShiftConfig(), rows=1_000, seed=4)
    with pytest.raises(ValueError, match="no scores"):
        assess(
            CONFIG,
            scores=inputs.scores,
            outcomes=None,
            decisions=None,
            reference=trained.reference,
            version="2",
        )


@pytest.fixture(scope="module")
def shifted_inputs(trained: TrainedModel) -> MonitoringInputs:
    return simulate_monitoring_inputs(trained, ShiftConfig(age_shift_sd=0.3), rows=3_000, seed=9)


def test_the_reference_is_stored_with_a_version(trained: TrainedModel, tmp_path: Path) -> None:
    tracker = Tracker.for_home(tmp_path)
    client = tracker.client()
    with tracker.activate(), mlflow.start_run(experiment_id=tracker.experiment_id("t")):
        uri = log_training_reference(trained.reference)
    client.create_registered_model("m")
    client.create_model_version("m", source=str(tmp_path), tags={TAG_REFERENCE: uri})
    loaded = load_training_reference(tracker, "m", "1")
    assert loaded.to_json() == trained.reference.to_json()


def test_a_run_is_logged_and_linked_to_the_version(
    trained: TrainedModel, shifted_inputs: MonitoringInputs, tmp_path: Path
) -> None:
    tracker = Tracker.for_home(tmp_path)
    client = tracker.client()
    client.create_registered_model(CONFIG.registered_model)
    client.create_model_version(CONFIG.registered_model, source=str(tmp_path), run_id=None)
    result = monitor_simulated(CONFIG, trained, shifted_inputs, tracker=tracker)
    assert result.run_id is not None
    run = client.get_run(result.run_id)
    assert run.data.tags[TAG_VERSION] == "1"
    assert run.data.tags[TAG_ALERT] == "true"
    assert "drift age" in run.data.tags[TAG_ALERTS]
    assert run.data.metrics["drift_feature_age_psi"] > 0.03
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"monitoring_report.html", "plots", "tables"} <= artifacts
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"plots/drift.png", "plots/reliability.png", "plots/overrides.png"} <= plots
    version = client.get_model_version(CONFIG.registered_model, "1")
    assert version.tags[TAG_LAST_RUN] == result.run_id


def test_the_report_names_what_moved(
    trained: TrainedModel, shifted_inputs: MonitoringInputs
) -> None:
    result = monitor_simulated(CONFIG, trained, shifted_inputs)
    page = render_html(result, CONFIG)
    assert "What moved" in page
    assert "drift age: PSI" in page
    assert page.count("<img") >= 5
