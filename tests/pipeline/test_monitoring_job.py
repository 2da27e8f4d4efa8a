"""What ``desist monitor``'s job reads besides the service's records: the assessments as sent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.errors import SchemaValidationError
from data.schema import TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from pipeline.drift import SCORE
from pipeline.monitoring import MonitorResult
from pipeline.monitoring_job import publish_drift, read_assessments
from serving.metrics import Metrics, read_drift_snapshot


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


def _result(alert: bool) -> MonitorResult:
    """A monitoring result with only what publishing reads: drift and checks."""
    empty = pd.DataFrame()
    return MonitorResult(
        model="desist-risk",
        version="3",
        n_scored=10,
        n_matured=0,
        n_decided=0,
        checks=pd.DataFrame({"alert": [alert, False], "message": ["drift age", "score"]}),
        level=0.01,
        drift=pd.DataFrame({"feature": ["age", "employment", SCORE], "psi": [0.31, np.nan, 0.05]}),
        evaluation=None,
        deciles=empty,
        overrides_by_band=empty,
        overrides_by_group=empty,
        linkage={},
        matured=empty,
        run_id="run-1",
    )


def test_a_monitoring_run_reaches_the_service_gauges_through_the_snapshot(tmp_path: Path) -> None:
    snapshot = tmp_path / "drift.json"
    publish_drift(_result(alert=True), snapshot)
    (entry,) = read_drift_snapshot(snapshot).results
    assert (entry.model, entry.version, entry.alert, entry.run_id) == (
        "desist-risk",
        "3",
        True,
        "run-1",
    )
    assert entry.psi == {"age": 0.31, SCORE: 0.05}  # a feature not sent has no PSI to show
    scrape = Metrics().render(drift_snapshot=snapshot)
    assert 'desist_drift_alert{model="desist-risk",version="3"} 1.0' in scrape
    assert 'desist_drift_psi{feature="age",model="desist-risk",version="3"} 0.31' in scrape
