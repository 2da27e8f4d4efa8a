"""A batch run's files: the input in chunks, and outputs that appear whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from data.errors import DatasetFormatError, Violation
from pipeline.batch_files import Outputs, open_chunks, rejects_schema_for, rejects_table

SCORES = pa.schema([pa.field("case", pa.string()), pa.field("risk_probability", pa.float64())])


def cases(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"case": [f"{i:04d}" for i in range(rows)], "age": range(20, 20 + rows)})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_input_comes_in_chunks_of_the_asked_columns_with_text_ids(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"cases{suffix}"
    frame = cases(7)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    total, chunks = open_chunks(path, 3, frozenset({"case"}), "case")
    parts = list(chunks)
    assert total == (None if suffix == ".csv" else 7)
    assert [len(p) for p in parts] == [3, 3, 1]
    assert all(list(p.columns) == ["case"] for p in parts)
    assert pd.concat(parts)["case"].tolist() == frame["case"].tolist()  # "0001" stays text


def test_a_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="no such file"):
        open_chunks(tmp_path / "absent.csv", 10, None, "case")


def test_outputs_appear_together_or_not_at_all(tmp_path: Path) -> None:
    scores, rejects = tmp_path / "s.csv", tmp_path / "s.rejected.csv"
    rejects_schema = rejects_schema_for("case")
    table = pa.Table.from_pydict({"case": ["a"], "risk_probability": [0.25]}, schema=SCORES)
    with Outputs(scores, SCORES, rejects, rejects_schema) as outputs:
        outputs.scores.write(table)
        assert not scores.exists() and not rejects.exists()
    assert pd.read_csv(scores)["risk_probability"].tolist() == [0.25]
    assert pd.read_csv(rejects).columns.tolist() == ["row", "case", "column", "reason"]
    with pytest.raises(RuntimeError), Outputs(scores, SCORES, rejects, rejects_schema) as outputs:
        outputs.scores.write(table.slice(0, 0))
        raise RuntimeError("midway")
    assert pd.read_csv(scores)["risk_probability"].tolist() == [0.25]  # the old one is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "s.rejected.csv"]


def test_each_violation_is_a_rejects_row_with_the_id_of_its_row() -> None:
    ids = pd.Series(["x", "y", None], dtype="string")
    violations = [Violation("age", 11, "below 10"), Violation("sex", 12, "not a category")]
    table = rejects_table(violations, ids, first_row=10, schema=rejects_schema_for("case"))
    assert table.to_pylist() == [
        {"row": 11, "case": "y", "column": "age", "reason": "below 10"},
        {"row": 12, "case": None, "column": "sex", "reason": "not a category"},
    ]
