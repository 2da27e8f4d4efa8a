from __future__ import annotations

import pytest

from models.contract.errors import VersionTagError
from models.contract.tags import (
    CHAMPION,
    TAG_AUC,
    TAG_DIGEST,
    TAG_FEATURES,
    DatasetTag,
    VersionTags,
    calibration_tag,
    gate_tag,
)
from serving.settings import Settings


def risk_tags(**changes: object) -> VersionTags:
    base: dict[str, object] = {
        "run_id": "abc123",
        "family_run_id": "def456",
        "family": "scorecard",
        "features": ("age", "total_sanctions", "sex"),
        "audit_only": ("ethnicity",),
        "audited": ("ethnicity", "sex", "age band"),
        "test_roc_auc": 0.7312345678,
        "test_ece": 0.0123,
        "max_group_calibration_gap": 0.04,
        "digest": "sha256:" + "a" * 64,
        "dataset": DatasetTag(name="synthetic", source="synthetic:seed=3", sha256="b" * 64),
        "bands": (0.2, 0.5, 0.75),
        "trained_at": "2026-12-01T22:00:00+00:00",
        "model_card": "runs:/def456/model_card.html",
    }
    return VersionTags(**{**base, **changes})  # type: ignore[arg-type]


def test_risk_tags_round_trip_through_mlflow_tags() -> None:
    tags = risk_tags()
    assert VersionTags.from_mlflow_tags(tags.to_mlflow_tags()) == tags
    written = tags.to_mlflow_tags()
    assert written[TAG_AUC] == "0.731235"  # six decimals, as the jobs always wrote them
    assert written[TAG_FEATURES] == '["age", "total_sanctions", "sex"]'
    assert VersionTags.from_mlflow_tags(written).to_mlflow_tags() == written


def test_pathway_and_promoted_tags_round_trip() -> None:
    tags = VersionTags(
        run_id="r1",
        features=("age",),
        audit_only=("ethnicity", "sex"),
        digest="sha256:" + "c" * 64,
        trained_at="2026-12-01T22:00:00+00:00",
        estimated_policy_value=0.12,
        estimated_rnr_value=0.08,
        gates_record='{"decision": "promoted"}',
        promotion="promoted",
        gate_results=(("policy_value_not_worse_than_champion", True), ("beats_rule", False)),
    )
    written = tags.to_mlflow_tags()
    assert written[gate_tag("beats_rule")] == "fail"
    assert VersionTags.from_mlflow_tags(written) == tags
    # Tags that are not desist's own (MLflow's, a team's) are left alone.
    assert VersionTags.from_mlflow_tags({**written, "mlflow.user": "ana"}) == tags


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        (TAG_DIGEST, None, "missing"),
        (TAG_FEATURES, None, "missing"),
        (TAG_FEATURES, "age, sex", "bad value"),
        (TAG_FEATURES, '{"age": 1}', "bad value"),
        (TAG_AUC, "high", "bad value"),
        (gate_tag("calibration_error"), "maybe", "bad value"),
    ],
)
def test_a_missing_or_bad_tag_is_named(tag: str, value: str | None, reason: str) -> None:
    written = risk_tags().to_mlflow_tags()
    if value is None:
        del written[tag]
    else:
        written[tag] = value
    with pytest.raises(VersionTagError, match=f"tag {tag}: {reason}") as caught:
        VersionTags.from_mlflow_tags(written)
    assert caught.value.tag == tag


def test_the_champion_alias_is_the_one_the_service_serves_by_default() -> None:
    assert Settings.model_fields["model_alias"].default == CHAMPION == "champion"


def test_the_calibration_record_round_trips_and_gives_its_decision() -> None:
    record = (("passed", "false"), ("overall.slope", "1.6"), ("overall.slope.status", "fail"))
    tags = risk_tags(calibration=record)
    written = tags.to_mlflow_tags()
    assert written[calibration_tag("overall.slope.status")] == "fail"
    read = VersionTags.from_mlflow_tags(written)
    assert read == tags and read.calibration_passed is False
    assert risk_tags().calibration_passed is None
    with pytest.raises(VersionTagError, match=r"desist\.calibration\.passed"):
        VersionTags.from_mlflow_tags({**written, calibration_tag("passed"): "maybe"})
