from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data.errors import SchemaValidationError
from data.outcomes import LinkStatus, link_outcomes, load_outcomes, validate_outcomes


def _outcomes(**columns: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {
        "subject_ref": ["a", "b"],
        "outcome_date": ["2025-03-01", None],
        "follow_up_end": ["2026-06-01", "2026-06-01"],
    }
    return pd.DataFrame({**base, **columns})


def test_a_valid_table_gets_dates() -> None:
    table = validate_outcomes(_outcomes())
    assert list(table.columns) == ["subject_ref", "outcome_date", "follow_up_end"]
    assert table["outcome_date"].iloc[0] == pd.Timestamp("2025-03-01")
    assert pd.isna(table["outcome_date"].iloc[1])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_are_read_and_validated(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"outcomes{suffix}"
    frame = _outcomes(subject_ref=["007", "b"])
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    table = load_outcomes(path)
    assert table["subject_ref"].tolist() == ["007", "b"]  # a reference stays text


def test_every_violation_is_named_and_nothing_is_returned() -> None:
    frame = pd.DataFrame(
        {
            "subject_ref": ["a", "a", None, "d", "e"],
            "outcome_date": ["2025-03-01", "", "2025-01-01", "soon", "2027-01-01"],
            "follow_up_end": ["2026-01-01", "2026-01-01", "2026-01-01", "2026-01-01", "2026-01-01"],
        }
    )
    with pytest.raises(SchemaValidationError) as caught:
        validate_outcomes(frame, source="x.csv")
    found = {(v.column, v.row) for v in caught.value.violations}
    assert found == {
        ("subject_ref", 2),  # duplicate
        ("subject_ref", 3),  # missing
        ("outcome_date", 4),  # not a date
        ("outcome_date", 5),  # after the end of follow-up
    }
    assert "x.csv" in str(caught.value)
    assert "duplicate id 'a' (first seen in row 1)" in str(caught.value)


def test_missing_columns_and_required_dates() -> None:
    with pytest.raises(SchemaValidationError) as caught:
        validate_outcomes(pd.DataFrame({"subject_ref": ["a"], "outcome_dat": ["2025-01-01"]}))
    assert {v.column for v in caught.value.violations} == {"outcome_date", "follow_up_end"}
    with pytest.raises(SchemaValidationError, match="follow_up_end, row 1: missing value"):
        validate_outcomes(_outcomes(follow_up_end=[None, "2026-01-01"]))


def _scores(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"subject_ref": [r for r, _ in rows], "time": [t for _, t in rows]})


def test_only_closed_windows_count() -> None:
    outcomes = validate_outcomes(
        pd.DataFrame(
            {
                "subject_ref": ["pos", "neg", "short", "before", "sameday", "late", "open"],
                "outcome_date": [
                    "2025-06-01",
                    None,
                    None,
                    "2024-12-01",
                    "2025-01-10",
                    "2026-03-01",
                    "2026-01-05",
                ],
                "follow_up_end": [
                    "2025-07-01",  # the sanction fell inside: follow-up after it is irrelevant
                    "2026-02-01",
                    "2025-12-01",
                    "2026-06-01",
                    "2026-06-01",
                    "2026-06-01",
                    "2026-06-01",
                ],
            }
        )
    )
    scores = _scores(
        ("pos", "2025-01-10T09:00:00+00:00"),
        ("neg", "2025-01-10T09:00:00Z"),
        ("short", "2025-01-10T09:00:00Z"),
        ("before", "2025-01-10T09:00:00Z"),
        ("sameday", "2025-01-10T23:00:00Z"),
        ("late", "2025-01-10T09:00:00Z"),
        ("open", "2025-12-01T09:00:00Z"),
        ("nobody", "2025-01-10T09:00:00Z"),
    )
    linked = link_outcomes(scores, outcomes, as_of=pd.Timestamp("2026-06-01"))
    status = dict(zip(linked["subject_ref"], linked["link_status"].astype(str), strict=True))
    assert status == {
        "pos": LinkStatus.MATURED,
        "neg": LinkStatus.MATURED,
        "short": LinkStatus.FOLLOW_UP_SHORT,
        "before": LinkStatus.OUTCOME_BEFORE_SCORE,
        "sameday": LinkStatus.OUTCOME_BEFORE_SCORE,
        "late": LinkStatus.MATURED,
        # A sanction inside a window that has not closed yet does not count early.
        "open": LinkStatus.WINDOW_OPEN,
        "nobody": LinkStatus.NO_RECORD,
    }
    outcome = dict(zip(linked["subject_ref"], linked["outcome"], strict=True))
    assert (outcome["pos"], outcome["neg"], outcome["late"]) == (1, 0, 0)
    assert pd.isna(outcome["open"])
    assert linked["matured"].sum() == 3


def test_the_window_length_comes_from_the_config() -> None:
    outcomes = validate_outcomes(
        pd.DataFrame(
            {"subject_ref": ["a"], "outcome_date": ["2026-03-01"], "follow_up_end": ["2027-06-01"]}
        )
    )
    scores = _scores(("a", "2025-01-10T09:00:00Z"))
    assert link_outcomes(scores, outcomes)["outcome"].iloc[0] == 0
    assert link_outcomes(scores, outcomes, window_months=24)["outcome"].iloc[0] == 1
    assert bool(link_outcomes(scores, outcomes, window_months=24)["matured"].iloc[0])
    with pytest.raises(ValueError, match="window_months"):
        link_outcomes(scores, outcomes, window_months=0)


def test_dates_outside_nanosecond_range_are_named_not_raised() -> None:
    # Found by the service's fuzz test (POST /v1/outcomes): 1594 does not fit pandas' nanoseconds.
    frame = pd.DataFrame(
        {"subject_ref": ["a"], "outcome_date": ["1594-08-30"], "follow_up_end": ["9999-01-01"]}
    )
    with pytest.raises(SchemaValidationError) as caught:
        validate_outcomes(frame)
    assert {(v.column, v.row) for v in caught.value.violations} == {
        ("outcome_date", 1),
        ("follow_up_end", 1),
    }
