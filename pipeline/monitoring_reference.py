"""The training reference stored with a registered version, for ``desist monitor``'s drift checks.

At registration the risk job bins its training rows and its test split's
scores (:func:`pipeline.drift.make_training_reference`: counts only, never a
person's row), logs them as JSON in its parent run
(:func:`record_training_reference`) and names that artifact in the version's
``training_reference`` tag (:class:`models.contract.tags.VersionTags`).
:func:`load_training_reference` reads it back by model name and version.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from models.contract.tags import TAG_TRAINING_REFERENCE
from pipeline.drift import TrainingReference, make_training_reference
from pipeline.tracking import Tracker, TrackingStoreError

#: Where registration logs the training reference in its run, and the version tag naming it.
REFERENCE_ARTIFACT = "monitoring/training_reference.json"
TAG_REFERENCE = TAG_TRAINING_REFERENCE


def log_training_reference(reference: TrainingReference) -> str:
    """Log ``reference`` in the active run; return its URI, for the version's tag."""
    mlflow.log_text(reference.to_json(), REFERENCE_ARTIFACT)
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_training_reference needs an active MLflow run")
    return f"runs:/{run.info.run_id}/{REFERENCE_ARTIFACT}"


def record_training_reference(
    train: pd.DataFrame,
    features: tuple[str, ...],
    test_probability: np.ndarray,
    test_outcome: np.ndarray,
) -> str:
    """Bin the training rows and test split's scores, log them in the active run; return the URI.

    The test split's probabilities and outcomes give the score-shift
    reference, the AUC and the decile calibration that monitoring compares
    later populations with (what the gates passed the model on).
    """
    reference = make_training_reference(
        train, features, probability=test_probability, outcome=test_outcome
    )
    return log_training_reference(reference)


def load_training_reference(tracker: Tracker, name: str, version: str) -> TrainingReference:
    """Return the training reference stored with a registered version.

    Raises
    ------
    TrackingStoreError
        If the store fails, or the version has no reference tag (registered
        before references were stored, or by another job).
    """
    with tracker.reporting_failures():
        tags = tracker.client().get_model_version(name, version).tags
    uri = tags.get(TAG_REFERENCE)
    if uri is None:
        raise TrackingStoreError(
            f"{name} version {version} has no training reference ({TAG_REFERENCE} tag): "
            "versions registered by `desist train risk` carry one"
        )
    with tracker.activate():  # reports the store's failures too
        text = mlflow.artifacts.load_text(uri)
    return TrainingReference.from_json(text)
