"""Golden scores on the model and batch paths: a fixed small model's outputs, pinned to 1e-9.

The pinned file (tests/golden/expected.json) is only read here. It is rewritten by
``make golden WHY="..."`` alone (tests/support/golden.py), committed saying why.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from tests.support import golden


@pytest.fixture(scope="session")
def expected() -> dict[str, Any]:
    return golden.load_expected()


@pytest.fixture(scope="session")
def models() -> golden.GoldenModels:
    """Fitted once per session (cached in tests.support.golden), on one thread."""
    return golden.fit_golden_models()


def test_the_pinned_file_was_made_with_todays_settings(expected: dict[str, Any]) -> None:
    assert expected, f"no pinned file: {golden.REGENERATE}"
    assert expected["spec"] == golden.describe_spec()
    assert expected["tolerance"] == golden.TOLERANCE
    assert set(expected["risk"]) == set(golden.RISK_MODELS)


def test_every_regeneration_says_why(expected: dict[str, Any]) -> None:
    assert expected["history"]
    for entry in expected["history"]:
        assert entry["why"].strip() and entry["at"]


def test_the_golden_assessments_are_valid_and_varied() -> None:
    items = golden.load_assessments()
    assert len(items) >= 20
    assert len(golden.validated_assessments()) == len(golden.checked_frame()) == len(items)
    assert len({item["subject_ref"] for item in items}) == len(items)
    # Missing optional fields, both omitted and sent as null.
    assert any(
        set(item) == {"subject_ref", "age", "total_sanctions", "offence_category"} for item in items
    )
    assert any(item.get("drug_misuse", 0) is None and "drug_misuse" in item for item in items)
    # The schema's edge values.
    for field, edge in [
        ("age", 16),
        ("age", 100),
        ("total_sanctions", 0),
        ("total_sanctions", 500),
    ]:
        assert any(item[field] == edge for item in items), (field, edge)
    assert {0.0, 600.0} <= {item.get("months_offence_free") for item in items}


def test_the_pins_cover_every_band(expected: dict[str, Any]) -> None:
    bands = {r["risk_band"] for records in expected["risk"].values() for r in records.values()}
    assert bands == {"low", "medium", "high", "very high"}


#: The model-side paths to a risk score: batch scoring's, and predict_proba with top_reasons.
RISK_PATHS = {"batch": golden.batch_risk, "reference": golden.reference_risk}


@pytest.mark.parametrize("name", golden.RISK_MODELS)
@pytest.mark.parametrize("path", RISK_PATHS)
def test_batch_and_reference_paths_give_the_pinned_scores(
    path: str, name: str, models: golden.GoldenModels, expected: dict[str, Any]
) -> None:
    got = {name: RISK_PATHS[path](models.risk[name])}
    golden.assert_matches(path, "risk", got, expected)


def test_pathway_estimates_are_the_pinned_ones(
    models: golden.GoldenModels, expected: dict[str, Any]
) -> None:
    got = {"pathways": golden.pathway_estimates(models.pathways)}
    golden.assert_matches("model", "pathway_estimates", got, expected)


def test_pathway_recommendations_are_the_pinned_ones(
    models: golden.GoldenModels, expected: dict[str, Any]
) -> None:
    got = golden.reference_recommendations(models.pathways)
    pinned = {
        ref: {"recommended": answer["recommended"]}
        for ref, answer in expected["pathway_recommendations"]["pathways"].items()
    }
    golden.assert_matches(
        "model",
        "pathway_recommendations",
        {"pathways": got},
        {**expected, "pathway_recommendations": {"pathways": pinned}},
    )


def test_a_mismatch_names_the_assessment_the_field_and_both_values(
    models: golden.GoldenModels, expected: dict[str, Any]
) -> None:
    altered = copy.deepcopy(expected)
    record = altered["risk"]["boosting"]["G07"]
    record["risk_probability"] += 2e-9
    record["reasons"][1]["feature"] = "no_such_feature"
    del altered["risk"]["boosting"]["G21"]
    got = {"boosting": golden.batch_risk(models.risk["boosting"])}
    with pytest.raises(AssertionError) as failure:
        golden.assert_matches("batch", "risk", got, altered)
    text = str(failure.value)
    assert "3 value(s)" in text
    pinned_p = record["risk_probability"]
    got_p = got["boosting"]["G07"]["risk_probability"]
    assert f"boosting | G07 | risk_probability: pinned {pinned_p!r}, got {got_p!r}" in text
    assert "boosting | G07 | reasons[1].feature: pinned 'no_such_feature', got" in text
    assert "boosting | G21 | (the whole record): pinned '<absent>'" in text
    assert "make golden" in text
    # Within the tolerance is a match.
    record["risk_probability"] = got_p + 0.5e-9
    record["reasons"][1]["feature"] = got["boosting"]["G07"]["reasons"][1]["feature"]
    altered["risk"]["boosting"]["G21"] = got["boosting"]["G21"]
    golden.assert_matches("batch", "risk", got, altered)


def test_checking_never_rewrites_the_pinned_file() -> None:
    before = hashlib.sha256(golden.EXPECTED_PATH.read_bytes()).hexdigest()
    assert golden.main([]) == 0
    assert hashlib.sha256(golden.EXPECTED_PATH.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("argv", [["--regenerate"], ["--regenerate", "--why", " "], ["--why", "x"]])
def test_regenerating_needs_the_flag_and_a_reason(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        golden.main(argv)
    assert exit_.value.code == 2
