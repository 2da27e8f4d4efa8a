"""Data errors: one base class, messages that name what is wrong, and the fields kept."""

from __future__ import annotations

import pytest

from data.errors import (
    DatasetFormatError,
    DesistError,
    FieldError,
    ForbiddenFeatureError,
    LeakageError,
    SchemaValidationError,
    SourceAdapterError,
    UnknownFieldError,
    Violation,
)


def test_a_violation_names_its_column_and_row() -> None:
    assert str(Violation("age", 3, "below 10")) == "age, row 3: below 10"
    assert str(Violation("age", None, "column missing")) == "age, all rows: column missing"


def test_validation_error_lists_the_first_violations_and_counts_the_rest() -> None:
    violations = [Violation("age", row, "bad") for row in range(1, 26)]
    error = SchemaValidationError(violations, source="cohort.csv")
    lines = str(error).splitlines()
    assert lines[0] == "cohort.csv failed validation with 25 violation(s):"
    assert len(lines) == 1 + SchemaValidationError.shown + 1
    assert lines[-1] == "  ... and 5 more"
    assert error.violations == violations and error.source == "cohort.csv"


def test_a_short_list_has_no_summary_line() -> None:
    error = SchemaValidationError([Violation("sex", 1, "unknown category")])
    assert str(error).splitlines() == [
        "dataset failed validation with 1 violation(s):",
        "  - sex, row 1: unknown category",
    ]


@pytest.mark.parametrize(
    ("error", "message", "fields"),
    [
        (
            UnknownFieldError("shoe_size"),
            "'shoe_size' is not a field of the assessment schema",
            {"name": "shoe_size"},
        ),
        (
            ForbiddenFeatureError("ethnicity", "audit"),
            "'ethnicity' (audit) may not be used as a model feature",
            {"name": "ethnicity", "role": "audit"},
        ),
        (
            LeakageError("days", "known only after"),
            "'days' may not be a feature: known only after",
            {"name": "days", "reason": "known only after"},
        ),
        (
            SourceAdapterError("dob", "not a date", rows=(2, 7)),
            "dob: not a date (rows 2, 7)",
            {"column": "dob", "reason": "not a date", "rows": (2, 7)},
        ),
        (SourceAdapterError("dob", "unknown key"), "dob: unknown key", {"rows": ()}),
    ],
)
def test_errors_say_what_is_wrong_and_keep_their_fields(
    error: DesistError, message: str, fields: dict[str, object]
) -> None:
    assert str(error) == message
    assert all(getattr(error, name) == value for name, value in fields.items())


def test_every_data_error_is_a_desist_error() -> None:
    for kind in (
        SchemaValidationError,
        UnknownFieldError,
        ForbiddenFeatureError,
        DatasetFormatError,
        SourceAdapterError,
        LeakageError,
    ):
        assert issubclass(kind, DesistError)


def test_the_field_errors_share_one_base_naming_the_field() -> None:
    for error in (UnknownFieldError("x"), ForbiddenFeatureError("x", "id"), LeakageError("x", "r")):
        assert isinstance(error, FieldError) and error.name == "x"
