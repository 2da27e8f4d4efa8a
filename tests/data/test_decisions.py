from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from data.decisions import (
    DECISION_BANDS,
    DecisionRequest,
    latest_decisions,
    override_problem,
    validate_decisions,
)
from data.errors import SchemaValidationError
from models.bands import BAND_NAMES

BASE = {"request_id": "r1", "subject_ref": "s1", "practitioner_ref": "P12"}


def test_bands_match_the_models_bands() -> None:
    assert DECISION_BANDS == BAND_NAMES


def test_accepted_and_overridden_decisions() -> None:
    assert DecisionRequest(**BASE, decision="accepted").override_band is None
    override = DecisionRequest(
        **BASE, decision="overridden", override_band="high", reason="new information from police"
    )
    assert override_problem(override, "medium") is None
    assert "served" in str(override_problem(override, "high"))
    action = DecisionRequest(
        **BASE, decision="overridden", override_action="accommodation", reason="housing first"
    )
    assert override_problem(action, "low") is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"decision": "overridden", "override_band": "high"}, "needs a reason"),
        ({"decision": "overridden", "reason": "because"}, "names override_band"),
        ({"decision": "accepted", "override_band": "low"}, "accepted decision"),
        (
            {"decision": "overridden", "override_band": "extreme", "reason": "x y z"},
            "override_band",
        ),
        ({"decision": "accepted", "colour": "red"}, "Extra inputs"),
        ({"decision": "overridden", "override_band": "low", "reason": "x" * 1001}, "1000"),
        ({"decision": "accepted", "practitioner_ref": "a\x00b"}, "pattern"),
    ],
)
def test_bad_decisions_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DecisionRequest(**{**BASE, **changes})


def _table(**changes: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {
        "time": ["2025-01-01T10:00:00Z", "2025-01-02T10:00:00Z"],
        "request_id": ["r1", "r1"],
        "subject_ref": ["s1", "s1"],
        "revision": [1, 2],
        "decision": ["accepted", "overridden"],
        "override_band": [None, "high"],
        "override_action": [None, None],
        "reason": [None, "new information"],
        "practitioner_ref": ["P1", "P1"],
    }
    return pd.DataFrame({**base, **changes})


def test_the_latest_revision_counts() -> None:
    latest = latest_decisions(validate_decisions(_table()))
    assert latest["decision"].tolist() == ["overridden"]
    assert latest["revision"].tolist() == [2]


def test_a_bad_table_names_rows() -> None:
    with pytest.raises(SchemaValidationError) as caught:
        validate_decisions(
            _table(decision=["accepted", "ignored"], reason=[None, None], revision=[0, 2])
        )
    found = {(v.column, v.row) for v in caught.value.violations}
    assert found == {("revision", 1), ("decision", 2)}
    with pytest.raises(SchemaValidationError, match="an override needs a reason"):
        validate_decisions(_table(reason=[None, None]))
    with pytest.raises(SchemaValidationError, match="missing required column"):
        validate_decisions(_table().drop(columns=["practitioner_ref"]))
