"""Risk models fitted for tests: the feature list and one fit-and-calibrate step.

Shared by the model fixtures (``tests/models/conftest.py``) and the contract's
tests, so that every test fits a risk family the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from data.schema import DEFAULT_FEATURES, TARGET_FIELD
from models.calibration import ScoreCalibratedClassifier
from models.risk import AnySettings, build_risk_model, calibrate

#: The default features plus ``sex`` (audited, so the models see a protected column).
FEATURES = (*DEFAULT_FEATURES, "sex")


def fit_calibrated(
    settings: AnySettings,
    train: pd.DataFrame,
    calibration: pd.DataFrame,
    features: Sequence[str] = FEATURES,
) -> ScoreCalibratedClassifier:
    """Fit a risk family on ``train`` and calibrate it on ``calibration``."""
    fitted = build_risk_model(tuple(features), settings)
    fitted.fit(train, train[TARGET_FIELD].astype(int))
    return calibrate(fitted, calibration, calibration[TARGET_FIELD])
