from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.adapters import SourceAdapter, load_adapter, make_adapter
from data.errors import SourceAdapterError, SourceValueProblem
from data.loaders import read_table
from data.schema import ID_FIELD
from data.validation import check_rows, validate_frame

REPO = Path(__file__).parents[2]
COMPAS_CONFIG = REPO / "configs" / "compas.toml"
#: The real Broward County file, found beside the repository (never copied into it).
COMPAS_DATA = Path(
    os.environ.get(
        "DESIST_COMPAS_PATH",
        REPO.parent / "shared" / "data" / "compas" / "compas-scores-two-years.csv",
    )
)


def source() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [7, 8, 9],
            "age": [25, 40, 33],
            "priors": [3, 0, 1],
            "juv_a": [1, 0, 0],
            "juv_b": [0, 0, 2],
            "gender": ["Male", "Female", "Male"],
            "charge": ["Grand Theft in the 3rd Degree", "Battery", None],
            "dob": ["1990-06-15", "1975-01-01", "1982-12-31"],
            "screened": ["2015-06-14", "2015-01-01", "2016-01-02"],
            "jail_in": ["2015-06-10 23:10:00", None, "2016-01-03 01:00:00"],
            "jail_out": ["2015-06-20 10:00:00", None, "2016-01-02 09:00:00"],
            "recid": [1, 0, 1],
            "tool_decile": [8, 2, 5],
        }
    )


def table(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id_column": "id",
        "never_features": ["recid", "tool_decile"],
        "fields": {
            "age": {"years_from": "dob", "years_to": "screened"},
            "total_sanctions": {"sum": ["priors", "juv_a", "juv_b"]},
            "juvenile_sanctions": {"sum": ["juv_a", "juv_b"]},
            "sex": {"column": "gender", "values": {"Male": "male", "Female": "female"}},
            "offence_category": {
                "column": "charge",
                "keywords": [["theft", "theft"], ["batt", "violence"]],
                "default": "other",
                "missing": "other",
            },
            "days_in_custody_at_assessment": {
                "days_from": "jail_in",
                "days_to": "screened",
                "min": 0,
            },
            "in_custody_at_assessment": {"date": "jail_out", "after": "screened"},
            "reoffended_24m": {"column": "recid"},
            "incumbent_decile": {"column": "tool_decile"},
        },
    }
    base.update(changes)
    return base


def test_apply_renames_and_derives_canonical_columns() -> None:
    out = make_adapter(table()).apply(source())
    assert out.columns[0] == ID_FIELD
    assert out[ID_FIELD].tolist() == ["7", "8", "9"]
    # Birthdays count on the day: 24 the day before the 25th birthday, 40 on it.
    assert out["age"].tolist() == [24, 40, 33]
    assert out["total_sanctions"].tolist() == [4, 0, 3]
    assert out["juvenile_sanctions"].tolist() == [1, 0, 2]
    assert out["sex"].tolist() == ["male", "female", "male"]
    assert out["offence_category"].tolist() == ["theft", "violence", "other"]
    # Dates are read to the day: 10 June 23:10 to 14 June is 4 days; jailed after screening is 0.
    days = out["days_in_custody_at_assessment"].to_numpy()
    assert days[0] == 4 and np.isnan(days[1]) and days[2] == 0
    assert out["in_custody_at_assessment"].tolist() == [1, 0, 0]
    validated = validate_frame(out, require=["reoffended_24m"])
    assert validated["reoffended_24m"].tolist() == [1, 0, 1]
    assert validated["incumbent_decile"].tolist() == [8, 2, 5]
    # Fields the source lacks are "not assessed", not zero.
    assert validated["drug_misuse"].isna().all() and validated["ethnicity"].isna().all()


def test_a_missing_source_column_is_named() -> None:
    with pytest.raises(SourceAdapterError, match="juv_b") as caught:
        make_adapter(table()).apply(source().drop(columns=["juv_b"]))
    assert "missing" in str(caught.value)


def test_an_unmapped_value_names_column_value_and_row() -> None:
    frame = source()
    frame.loc[1, "gender"] = "Unknown"
    with pytest.raises(SourceAdapterError, match=r"gender: value 'Unknown'.*\(rows 2\)"):
        make_adapter(table()).apply(frame)


def test_an_unreadable_date_names_column_and_row() -> None:
    frame = source()
    frame.loc[2, "screened"] = "yesterday"
    with pytest.raises(SourceAdapterError, match=r"screened: not a date: 'yesterday' \(rows 3\)"):
        make_adapter(table()).apply(frame)


def test_collected_problems_name_every_bad_value_and_leave_the_cells_missing() -> None:
    frame = source()
    frame.loc[1, "gender"] = "Unknown"
    frame.loc[2, "screened"] = "yesterday"
    frame["juv_b"] = frame["juv_b"].astype(object)
    frame.loc[0, "juv_b"] = "two"
    problems: list[SourceValueProblem] = []
    out = make_adapter(table()).apply(frame, problems=problems)
    found = {(p.column, p.field, p.positions, p.reasons) for p in problems}
    # "screened" feeds three fields, so each names the row for its own field.
    assert found == {
        (
            "gender",
            "sex",
            (1,),
            ("value 'Unknown' has no mapping to sex (add it to values, or a default)",),
        ),
        ("juv_b", "total_sanctions", (0,), ("not a number: 'two'",)),
        ("juv_b", "juvenile_sanctions", (0,), ("not a number: 'two'",)),
        ("screened", "age", (2,), ("not a date: 'yesterday'",)),
        ("screened", "days_in_custody_at_assessment", (2,), ("not a date: 'yesterday'",)),
        ("screened", "in_custody_at_assessment", (2,), ("not a date: 'yesterday'",)),
    }
    assert pd.isna(out.loc[1, "sex"]) and pd.isna(out.loc[0, "total_sanctions"])
    assert pd.isna(out.loc[2, "age"])
    # The good rows are mapped as ever.
    assert out.loc[0, "sex"] == "male" and out.loc[1, "total_sanctions"] == 0


def test_check_rows_rejects_the_rows_an_adapter_could_not_map() -> None:
    frame = source()
    frame.loc[1, "charge"] = "Robbery"
    rule = {"column": "charge", "values": {"Grand Theft in the 3rd Degree": "theft"}}
    adapter = make_adapter(table(fields={**table()["fields"], "offence_category": rule}))  # type: ignore[dict-item]
    problems: list[SourceValueProblem] = []
    adapted = adapter.apply(frame, problems=problems)
    checked = check_rows(adapted, first_row=11, source_problems=problems)
    assert checked.valid.index.tolist() == [11]  # row 13's charge is empty: required
    assert checked.rejected_rows.tolist() == [12, 13]
    row_12 = [v for v in checked.violations if v.row == 12]
    # The adapter's reason, not "required" for the cell it left empty.
    assert [(v.column, v.reason[:16]) for v in row_12] == [("charge", "value 'Robbery' ")]


def test_a_never_feature_column_cannot_feed_a_feature_field() -> None:
    fields = dict(table()["fields"])  # type: ignore[call-overload]
    fields["total_sanctions"] = {"column": "tool_decile"}
    with pytest.raises(SourceAdapterError, match=r"total_sanctions.*tool_decile"):
        make_adapter(table(fields=fields))


def test_never_feature_fields_are_those_made_from_never_feature_columns() -> None:
    adapter = make_adapter(table())
    assert adapter.never_features == ("recid", "tool_decile")
    assert set(adapter.never_feature_fields) == {"reoffended_24m", "incumbent_decile"}


@pytest.mark.parametrize(
    ("name", "rule", "reason"),
    [
        ("shoe_size", {"column": "age"}, "not a field"),
        ("sex", {"column": "gender", "values": {"Male": "man"}}, "not among its categories"),
        (ID_FIELD, {"column": "id"}, "id_column"),
        ("offence_category", {"sum": ["priors"]}, "needs a column rule"),
    ],
)
def test_invalid_rules_are_refused_by_name(name: str, rule: object, reason: str) -> None:
    with pytest.raises(SourceAdapterError, match=reason):
        make_adapter(table(fields={name: rule}))


def test_load_adapter_reads_the_table_or_returns_none(tmp_path: Path) -> None:
    plain = tmp_path / "plain.toml"
    plain.write_text('target = "reoffended_12m"\n')
    assert load_adapter(plain) is None
    adapted = tmp_path / "adapted.toml"
    adapted.write_text(
        '[adapter]\nid_column = "ref"\n[adapter.fields]\nage = { column = "years" }\n'
    )
    adapter = load_adapter(adapted)
    assert isinstance(adapter, SourceAdapter)
    out = adapter.apply(pd.DataFrame({"ref": ["a"], "years": [30]}))
    assert out.to_dict("list") == {ID_FIELD: ["a"], "age": [30]}


def test_the_compas_config_declares_its_leakage_columns() -> None:
    adapter = load_adapter(COMPAS_CONFIG)
    assert adapter is not None and adapter.id_column == "id"
    for column in ("two_year_recid", "is_recid", "decile_score", "score_text", "race", "end"):
        assert column in adapter.never_features
    assert "race" in adapter.never_feature_fields
    assert "sex" not in adapter.never_feature_fields


@pytest.mark.skipif(
    not COMPAS_DATA.is_file(),
    reason=f"Broward County data not found at {COMPAS_DATA} (set DESIST_COMPAS_PATH)",
)
def test_the_compas_adapter_maps_the_real_file_onto_a_valid_schema() -> None:
    adapter = load_adapter(COMPAS_CONFIG)
    assert adapter is not None
    raw = read_table(COMPAS_DATA)
    frame = validate_frame(adapter.apply(raw), require=["reoffended_24m"], source="compas")
    assert len(frame) == len(raw)
    assert frame["reoffended_24m"].mean() == pytest.approx(raw["two_year_recid"].mean())
    assert set(frame["race"].dropna()) <= {"african_american", "caucasian", "hispanic"} | {
        "asian",
        "native_american",
        "other",
    }
    assert (frame["juvenile_sanctions"] <= frame["total_sanctions"]).all()
