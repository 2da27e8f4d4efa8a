"""What ``desist monitor``'s job reads besides the service's records: the assessments as sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.errors import SchemaValidationError
from data.schema import TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from pipeline.monitoring_job import read_assessments


def test_the_assessments_are_validated_and_never_carry_an_outcome(tmp_path: Path) -> None:
    cohort, _ = generate_cohort(SynthConfig(rows=50, seed=4))
    file = tmp_path / "sent.parquet"
    cohort.to_parquet(file)
    read = read_assessments(file)
    assert TARGET_FIELD not in read.columns
    assert read["subject_ref"].tolist() == cohort["subject_ref"].tolist()


def test_a_bad_assessment_is_refused_naming_row_and_column(tmp_path: Path) -> None:
    cohort, _ = generate_cohort(SynthConfig(rows=5, seed=4))
    cohort = cohort.astype({"age": "object"})
    cohort.loc[2, "age"] = "old"
    file = tmp_path / "sent.csv"
    cohort.to_csv(file, index=False)
    with pytest.raises(SchemaValidationError, match=r"age, row 3"):
        read_assessments(file)
