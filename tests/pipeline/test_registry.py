from __future__ import annotations

import json

import pytest

from data.schema import NEVER_FEATURES
from models.contract.errors import RegistryError
from models.contract.tags import CHAMPION, TAG_FEATURES, TAG_GATES, TAG_PROMOTION, gate_tag
from pipeline.config import GateConfig
from pipeline.registry import VersionFigures, evaluate_gates, promote
from pipeline.tracking import Tracker
from pipeline.train_risk import train
from tests.pipeline.conftest import small_config

# Small test splits (800 rows) make ECE noisy; the gate logic itself is tested with figures.
GATES = GateConfig(auc_tolerance=0.01, max_ece=0.10, max_group_calibration_gap=0.10)


def figures(version: str = "2", **changes: object) -> VersionFigures:
    base = {
        "version": version,
        "roc_auc": 0.75,
        "ece": 0.01,
        "max_group_calibration_gap": 0.02,
        "features": ("age", "total_sanctions"),
        "audit_only": ("ethnicity", "sex"),
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


@pytest.mark.parametrize(
    ("change", "gate"),
    [
        ({"ece": 0.2}, "calibration_error"),
        ({"max_group_calibration_gap": 0.3}, "group_calibration_gap"),
    ],
)
def test_gates_refuse_poor_calibration(change: dict[str, float], gate: str) -> None:
    decision = evaluate_gates(figures(**change), None, GATES, NEVER_FEATURES)  # type: ignore[arg-type]
    assert [c.name for c in decision.checks if not c.passed] == [gate]


def test_promotion_flow_records_every_decision(tracker: Tracker) -> None:
    first = train(small_config(), tracker=tracker)
    promoted = promote(tracker, "desist-risk", first.version, GATES, NEVER_FEATURES, actor="ana")
    assert promoted.promoted and not promoted.forced
    client = tracker.client()
    assert str(client.get_model_version_by_alias("desist-risk", CHAMPION).version) == first.version
    record = json.loads(client.get_model_version("desist-risk", first.version).tags[TAG_GATES])
    assert record["decision"] == "promoted" and record["by"] == "ana"

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


def test_promoting_an_unknown_version_is_a_clear_error(tracker: Tracker) -> None:
    with pytest.raises(RegistryError, match="version 7 does not exist"):
        promote(tracker, "desist-risk", "7", GATES, NEVER_FEATURES)
