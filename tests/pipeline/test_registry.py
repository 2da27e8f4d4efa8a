from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.schema import NEVER_FEATURES
from models.contract.errors import RegistryError
from models.contract.tags import (
    CALIBRATION_TAG_PREFIX,
    CHAMPION,
    TAG_FEATURES,
    TAG_GATES,
    TAG_PROMOTION,
    calibration_tag,
    gate_tag,
)
from pipeline.config import GateConfig
from pipeline.registry import CalibrationGate, VersionFigures, evaluate_gates, promote
from pipeline.tracking import Tracker
from pipeline.train_risk import train
from tests.pipeline.conftest import small_config

GATES = GateConfig(auc_tolerance=0.01)


def calibration_record(slope_status: str = "pass") -> tuple[tuple[str, str], ...]:
    """A calibration gate record as the job writes it (names under desist.calibration.)."""
    passed = "true" if slope_status == "pass" else "false"
    return (
        ("passed", passed),
        ("false_alarm_rate", "0.05"),
        ("per_test_alpha", "0.00833333"),
        ("overall.noise_test", "0.41"),
        ("overall.noise_test.limit", "p >= 0.00833"),
        ("overall.noise_test.status", "pass"),
        ("overall.slope", "1.02"),
        ("overall.slope.limit", "99.17% interval holds 1 or lies in [0.8, 1.25]"),
        ("overall.slope.status", "pass"),
        ("sex_female.slope", "1.61"),
        ("sex_female.slope.limit", "99.17% interval holds 1 or lies in [0.8, 1.25]"),
        ("sex_female.slope.status", slope_status),
        ("sex_female.slope.detail", "interval 1.2 to 2.0"),
        ("ethnicity_other.group_size", "5"),
        ("ethnicity_other.group_size.limit", "n >= 200"),
        ("ethnicity_other.group_size.status", "too few to judge (n = 5)"),
    )


def figures(version: str = "2", **changes: object) -> VersionFigures:
    base = {
        "version": version,
        "roc_auc": 0.75,
        "ece": 0.01,
        "max_group_calibration_gap": 0.02,
        "features": ("age", "total_sanctions"),
        "audit_only": ("ethnicity", "sex"),
        "calibration": calibration_record(),
    }
    return VersionFigures(**{**base, **changes})  # type: ignore[arg-type]


def test_a_good_candidate_passes_every_gate() -> None:
    decision = evaluate_gates(figures(), figures("1", roc_auc=0.752), GATES, NEVER_FEATURES)
    assert decision.passed and decision.failures() == []


def test_gates_refuse_a_worse_model() -> None:
    decision = evaluate_gates(figures(roc_auc=0.70), figures("1"), GATES, NEVER_FEATURES)
    assert not decision.passed
    assert decision.failures()[0].startswith("auc_not_worse_than_champion: 0.7")


@pytest.mark.parametrize("attribute", ["ethnicity", "sex"])
def test_gates_refuse_a_model_that_uses_an_audit_only_attribute(attribute: str) -> None:
    candidate = figures(features=("age", attribute))
    decision = evaluate_gates(candidate, None, GATES, NEVER_FEATURES)
    assert [c.name for c in decision.checks if not c.passed] == ["no_audit_only_feature"]


def test_sex_is_allowed_when_the_config_made_it_a_feature() -> None:
    candidate = figures(features=("age", "sex"), audit_only=("ethnicity",))
    assert evaluate_gates(candidate, None, GATES, NEVER_FEATURES).passed


def test_gates_refuse_a_model_whose_calibration_gate_failed() -> None:
    candidate = figures(calibration=calibration_record(slope_status="fail"))
    decision = evaluate_gates(candidate, None, GATES, NEVER_FEATURES)
    (failed,) = [c for c in decision.checks if not c.passed]
    assert failed.name == "calibration"
    assert failed.figure == "2 of 3 judged checks pass (failed: sex_female slope)"
    # Every figure travels with the gate, the group too small to judge included.
    statuses = {(d["scope"], d["check"]): d["status"] for d in failed.details}
    assert statuses[("ethnicity_other", "group_size")] == "too few to judge (n = 5)"
    assert statuses[("sex_female", "slope")] == "fail"
    assert failed.details[0]["scope"] == "overall"


def test_a_fixed_ece_ceiling_no_longer_refuses_a_model_the_calibration_gate_passed() -> None:
    decision = evaluate_gates(figures(ece=0.05), None, GATES, NEVER_FEATURES)
    assert decision.passed
    assert [c.name for c in decision.checks] == [
        "auc_not_worse_than_champion",
        "calibration",
        "no_audit_only_feature",
    ]


def test_a_version_without_a_calibration_record_is_refused_clearly() -> None:
    with pytest.raises(RegistryError, match=r"no calibration gate record.*retrain"):
        CalibrationGate().check(figures(calibration=()), None)


def test_promotion_flow_records_every_decision(tracker: Tracker) -> None:
    first = train(small_config(), tracker=tracker)
    promoted = promote(tracker, "desist-risk", first.version, GATES, NEVER_FEATURES, actor="ana")
    assert promoted.promoted and not promoted.forced
    client = tracker.client()
    assert str(client.get_model_version_by_alias("desist-risk", CHAMPION).version) == first.version
    first_tags = client.get_model_version("desist-risk", first.version).tags
    record = json.loads(first_tags[TAG_GATES])
    assert record["decision"] == "promoted" and record["by"] == "ana"
    # The job judged calibration on the test split and wrote every figure on the version.
    assert first.calibration_gate is not None and first.calibration_gate.passed
    assert first_tags[calibration_tag("passed")] == "true"
    assert first_tags[calibration_tag("overall.noise_test.status")] == "pass"
    (calibration,) = [c for c in record["checks"] if c["gate"] == "calibration"]
    assert calibration["passed"] and len(calibration["details"]) >= 4
    assert first_tags[gate_tag("calibration")] == "pass"

    # A model on age alone is clearly worse: the gates keep the champion.
    weaker = train(
        small_config(features=("age",), models=small_config().models[:1]), tracker=tracker
    )
    refused = promote(tracker, "desist-risk", weaker.version, GATES, NEVER_FEATURES, actor="ana")
    assert not refused.promoted
    assert str(client.get_model_version_by_alias("desist-risk", CHAMPION).version) == first.version
    tags = client.get_model_version("desist-risk", weaker.version).tags
    assert tags[TAG_PROMOTION] == "refused"
    assert tags[gate_tag("auc_not_worse_than_champion")] == "fail"

    with pytest.raises(RegistryError, match="--reason"):
        promote(tracker, "desist-risk", weaker.version, GATES, NEVER_FEATURES, force=True)
    forced = promote(
        tracker,
        "desist-risk",
        weaker.version,
        GATES,
        NEVER_FEATURES,
        force=True,
        reason="rollback drill",
        actor="ben",
    )
    assert forced.promoted and forced.forced and forced.previous_champion == first.version
    record = json.loads(client.get_model_version("desist-risk", weaker.version).tags[TAG_GATES])
    assert (record["decision"], record["by"], record["reason"]) == (
        "forced",
        "ben",
        "rollback drill",
    )
    assert str(client.get_model_version_by_alias("desist-risk", CHAMPION).version) == weaker.version
    # The decision in words: gates.md in the version's source run, and the description.
    forced_version = client.get_model_version("desist-risk", weaker.version)
    text = Path(client.download_artifacts(forced_version.run_id, "gates.md")).read_text()
    assert "- forced because: rollback drill" in text and "| calibration |" in text
    assert "forced past failed gates" in (forced_version.description or "")
    assert "Test ROC AUC" in (forced_version.description or "")
    assert "Not promoted yet" not in (forced_version.description or "")


def test_force_cannot_promote_a_model_that_uses_an_audit_only_attribute(tracker: Tracker) -> None:
    result = train(small_config(models=small_config().models[:1]), tracker=tracker)
    client = tracker.client()
    client.set_model_version_tag("desist-risk", result.version, TAG_FEATURES, '["ethnicity"]')
    with pytest.raises(RegistryError, match="no --force"):
        promote(
            tracker, "desist-risk", result.version, GATES, NEVER_FEATURES, force=True, reason="x"
        )
    with pytest.raises(Exception, match="champion"):
        client.get_model_version_by_alias("desist-risk", CHAMPION)


def test_promoting_a_version_without_calibration_tags_is_refused(tracker: Tracker) -> None:
    result = train(small_config(models=small_config().models[:1]), tracker=tracker)
    client = tracker.client()
    for tag in client.get_model_version("desist-risk", result.version).tags:
        if tag.startswith(CALIBRATION_TAG_PREFIX):
            client.delete_model_version_tag("desist-risk", result.version, tag)
    with pytest.raises(RegistryError, match="no calibration gate record"):
        promote(tracker, "desist-risk", result.version, GATES, NEVER_FEATURES)


def test_promoting_an_unknown_version_is_a_clear_error(tracker: Tracker) -> None:
    with pytest.raises(RegistryError, match="version 7 does not exist"):
        promote(tracker, "desist-risk", "7", GATES, NEVER_FEATURES)
