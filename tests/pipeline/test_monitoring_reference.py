"""The training reference a risk version carries from registration, read back by version."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from models.contract.tags import VersionTags
from pipeline.monitoring_reference import (
    TAG_REFERENCE,
    load_training_reference,
    record_training_reference,
)
from pipeline.tracking import Tracker, TrackingStoreError
from pipeline.train_risk import TrainResult


def test_the_risk_job_stores_the_reference_with_the_version(
    trained: tuple[Tracker, TrainResult],
) -> None:
    tracker, result = trained
    tags = tracker.client().get_model_version(result.registered_model, result.version).tags
    assert VersionTags.from_mlflow_tags(tags).training_reference == tags[TAG_REFERENCE]
    assert tags[TAG_REFERENCE].startswith(f"runs:/{result.run_id}/")  # the job's parent run
    reference = load_training_reference(tracker, result.registered_model, result.version)
    features = [f.name for f in reference.features]
    assert features and "ethnicity" not in features  # the model's features, never audit-only
    assert reference.score is not None and reference.calibration is not None
    # The reference AUC is the test split's, which the version's tags record too.
    assert reference.roc_auc == pytest.approx(result.test["roc_auc"], abs=1e-6)
    # Counts only: every feature's bins hold the training rows, no person's row.
    assert len({f.n for f in reference.features}) == 1


def test_a_version_without_a_reference_is_a_clear_error(tmp_path: Path) -> None:
    tracker = Tracker.for_home(tmp_path)
    client = tracker.client()
    client.create_registered_model("m")
    client.create_model_version("m", source=str(tmp_path))
    with pytest.raises(TrackingStoreError, match="m version 1 has no training reference"):
        load_training_reference(tracker, "m", "1")


def test_the_reference_is_logged_in_the_active_run(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"age": [20.0, 30.0, 40.0, 50.0]})
    p, y = np.array([0.2, 0.4, 0.6, 0.8]), np.array([0, 1, 0, 1])
    tracker = Tracker.for_home(tmp_path)
    with tracker.activate(), mlflow.start_run(experiment_id=tracker.experiment_id("t")) as run:
        uri = record_training_reference(frame, ("age",), p, y)
    assert uri == f"runs:/{run.info.run_id}/monitoring/training_reference.json"
