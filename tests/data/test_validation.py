from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.duplicate_ids import SeenIds
from data.errors import SchemaValidationError, Violation
from data.schema import NEED_FIELDS, OFFENCE_CATEGORIES, TARGET_FIELD
from data.validation import MAX_ROWS_PER_CHECK, check_rows, validate_frame


@pytest.fixture
def raw(small_cohort: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """A cohort as a CSV reader would hand it over: plain objects and floats."""
    cohort = small_cohort[0].head(50)
    return cohort.astype(object).where(cohort.notna(), None)


def violations(frame: pd.DataFrame, **kwargs: object) -> list[Violation]:
    with pytest.raises(SchemaValidationError) as info:
        validate_frame(frame, **kwargs)  # type: ignore[arg-type]
    return info.value.violations


def test_valid_frame_passes_with_canonical_types(raw: pd.DataFrame) -> None:
    clean = validate_frame(raw, require=[TARGET_FIELD])
    assert str(clean["age"].dtype) == "Int16"
    assert str(clean["drug_misuse"].dtype) == "Int8"
    assert isinstance(clean["offence_category"].dtype, pd.CategoricalDtype)
    assert clean["age"].tolist() == raw["age"].tolist()


def test_missing_required_column(raw: pd.DataFrame) -> None:
    found = violations(raw.drop(columns=["age"]))
    assert Violation("age", None, "missing required column") in found


def test_missing_target_column_when_training(raw: pd.DataFrame) -> None:
    found = violations(raw.drop(columns=[TARGET_FIELD]), require=[TARGET_FIELD])
    assert [v.column for v in found] == [TARGET_FIELD]


def test_absent_nullable_columns_are_not_assessed(raw: pd.DataFrame) -> None:
    needs = [spec.name for spec in NEED_FIELDS]
    clean = validate_frame(raw.drop(columns=needs))
    assert clean[needs].isna().all().all()


def test_wrong_type_names_column_row_and_value(raw: pd.DataFrame) -> None:
    raw.loc[3, "total_sanctions"] = "lots"
    found = violations(raw)
    assert found == [Violation("total_sanctions", 4, "not a number: 'lots'")]


def test_out_of_range(raw: pd.DataFrame) -> None:
    raw.loc[0, "age"] = 12
    raw.loc[1, "drug_misuse"] = 3
    found = violations(raw)
    assert Violation("age", 1, "out of range (16 to 100): 12") in found
    assert any(
        v.column == "drug_misuse" and v.row == 2 and "out of range" in v.reason for v in found
    )


def test_not_a_whole_number(raw: pd.DataFrame) -> None:
    raw.loc[5, "juvenile_sanctions"] = 1.5
    assert violations(raw) == [Violation("juvenile_sanctions", 6, "not a whole number: 1.5")]


def test_unknown_category(raw: pd.DataFrame) -> None:
    raw.loc[2, "offence_category"] = "arson"
    (found,) = violations(raw)
    assert (found.column, found.row) == ("offence_category", 3)
    assert "unknown category 'arson'" in found.reason


def test_missing_value_in_required_field(raw: pd.DataFrame) -> None:
    raw.loc[7, "age"] = None
    assert violations(raw) == [Violation("age", 8, "missing value (this field is required)")]


def test_duplicate_id(raw: pd.DataFrame) -> None:
    raw.loc[9, "subject_ref"] = raw.loc[2, "subject_ref"]
    (found,) = violations(raw)
    assert (found.column, found.row) == ("subject_ref", 10)
    assert "first seen in row 3" in found.reason


def test_non_binary_target(raw: pd.DataFrame) -> None:
    raw.loc[4, TARGET_FIELD] = 2
    (found,) = violations(raw, require=[TARGET_FIELD])
    assert (found.column, found.row) == (TARGET_FIELD, 5)


def test_single_class_target(raw: pd.DataFrame) -> None:
    raw[TARGET_FIELD] = 1
    (found,) = violations(raw, require=[TARGET_FIELD])
    assert found.row is None and "single class" in found.reason


@pytest.mark.parametrize(
    ("lower", "upper", "reason"),
    [
        ("age_first_sanction", "age", "age at first sanction is above age"),
        ("juvenile_sanctions", "total_sanctions", "juvenile sanctions exceed total sanctions"),
    ],
)
def test_cross_field_rules(raw: pd.DataFrame, lower: str, upper: str, reason: str) -> None:
    raw.loc[6, upper] = 20
    raw.loc[6, lower] = 30
    found = [v for v in violations(raw) if v.row == 7]
    assert found and found[0].column == lower and found[0].reason.startswith(reason)


def test_cross_field_rule_skips_missing_values(raw: pd.DataFrame) -> None:
    raw.loc[6, "age_first_sanction"] = None
    validate_frame(raw)


def test_every_violation_is_reported_at_once(raw: pd.DataFrame) -> None:
    raw.loc[0, "age"] = 200
    raw.loc[1, "sex"] = "x"
    raw.loc[2, "debt"] = -1
    found = violations(raw)
    assert {(v.column, v.row) for v in found} == {("age", 1), ("sex", 2), ("debt", 3)}


@pytest.fixture
def broken_age(small_cohort: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """The cohort with every age out of range: a wholly broken column."""
    return small_cohort[0].assign(age=np.full(len(small_cohort[0]), 200))


def test_a_wholly_broken_column_is_summarised(broken_age: pd.DataFrame) -> None:
    frame = broken_age
    found = violations(frame)
    assert len(found) == MAX_ROWS_PER_CHECK + 1
    assert found[-1].row is None and str(len(frame) - MAX_ROWS_PER_CHECK) in found[-1].reason


def test_error_message_names_source_and_count(raw: pd.DataFrame) -> None:
    raw.loc[0, "age"] = 12
    with pytest.raises(SchemaValidationError, match=r"cases\.csv failed validation with 1 "):
        validate_frame(raw, source="cases.csv")


def test_empty_dataset_is_refused(raw: pd.DataFrame) -> None:
    assert any("no rows" in v.reason for v in violations(raw.head(0)))


def test_check_rows_keeps_valid_rows_and_names_every_rejected_one(raw: pd.DataFrame) -> None:
    raw.loc[3, "age"] = 12
    raw.loc[3, "sex"] = "x"
    raw.loc[10, "total_sanctions"] = "lots"
    checked = check_rows(raw, first_row=101)
    assert checked.rejected_rows.tolist() == [104, 111]
    assert {(v.column, v.row) for v in checked.violations} == {
        ("age", 104),
        ("sex", 104),
        ("total_sanctions", 111),
    }
    assert len(checked.valid) == len(raw) - 2
    assert 104 not in checked.valid.index and checked.valid.index[0] == 101
    assert str(checked.valid["age"].dtype) == "Int16"
    expected = validate_frame(raw.drop(index=[3, 10]))
    pd.testing.assert_frame_equal(
        checked.valid.reset_index(drop=True), expected.reset_index(drop=True)
    )


def test_check_rows_lists_a_wholly_broken_column_row_by_row(broken_age: pd.DataFrame) -> None:
    frame = broken_age
    checked = check_rows(frame)
    assert len(checked.violations) == len(frame) and checked.valid.empty
    assert all(v.row is not None for v in checked.violations)


def test_check_rows_refuses_a_table_without_a_required_column(raw: pd.DataFrame) -> None:
    with pytest.raises(SchemaValidationError) as info:
        check_rows(raw.drop(columns=["age"]), source="cases.csv")
    assert info.value.violations == [Violation("age", None, "missing required column")]


def test_duplicate_ids_are_found_across_chunks(raw: pd.DataFrame) -> None:
    raw.loc[30, "subject_ref"] = raw.loc[2, "subject_ref"]
    raw.loc[40, "subject_ref"] = raw.loc[35, "subject_ref"]
    seen = SeenIds()
    first = check_rows(raw.iloc[:25], first_row=1, seen_ids=seen)
    second = check_rows(raw.iloc[25:], first_row=26, seen_ids=seen)
    assert first.violations == []
    assert [(v.row, v.reason.split("(")[-1]) for v in second.violations] == [
        (31, "first seen in row 3)"),
        (41, "first seen in row 36)"),
    ]
    whole = check_rows(raw)
    assert whole.violations == second.violations


def test_ids_sharing_a_hash_are_told_apart_within_a_chunk(
    raw: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw.loc[9, "subject_ref"] = raw.loc[2, "subject_ref"]
    expected = check_rows(raw).violations
    monkeypatch.setattr(pd.util, "hash_array", lambda values, **_: np.zeros(len(values), np.uint64))
    collided = check_rows(raw).violations
    assert collided == expected
    assert [(v.row, v.reason.split("(")[-1]) for v in collided] == [(10, "first seen in row 3)")]


def test_coded_categories_are_checked_like_text(raw: pd.DataFrame) -> None:
    coded = raw.copy()
    coded["offence_category"] = pd.Categorical(raw["offence_category"].astype(str))
    coded["offence_category"] = coded["offence_category"].cat.add_categories(["arson"])
    coded.loc[2, "offence_category"] = "arson"
    raw.loc[2, "offence_category"] = "arson"
    checked, as_text = check_rows(coded), check_rows(raw)
    assert checked.violations == as_text.violations
    assert [v.row for v in checked.violations] == [3]
    pd.testing.assert_frame_equal(checked.valid, as_text.valid)
    assert list(checked.valid["offence_category"].cat.categories) == list(OFFENCE_CATEGORIES)
