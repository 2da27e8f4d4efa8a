"""Session-scoped fitted risk models on a seeded cohort (fitted once, a few seconds)."""

from __future__ import annotations

import pandas as pd
import pytest

from data.synthetic import SynthConfig, generate_cohort
from models.calibration import ScoreCalibratedClassifier
from models.risk import AnySettings, AverageSettings, BoostingSettings, ScorecardSettings
from tests.support.risk_models import fit_calibrated


@pytest.fixture(scope="session")
def risk_data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train, calibration and test frames of a 30,000-person cohort."""
    cohort, _ = generate_cohort(SynthConfig(rows=30_000, seed=21))
    return cohort.iloc[:18_000], cohort.iloc[18_000:24_000], cohort.iloc[24_000:]


def _fit(settings: AnySettings, data: tuple[pd.DataFrame, ...]) -> ScoreCalibratedClassifier:
    train, calibration, _ = data
    return fit_calibrated(settings, train, calibration)


@pytest.fixture(scope="session")
def scorecard(risk_data: tuple[pd.DataFrame, ...]) -> ScoreCalibratedClassifier:
    return _fit(ScorecardSettings(max_bins=16), risk_data)


@pytest.fixture(scope="session")
def booster(risk_data: tuple[pd.DataFrame, ...]) -> ScoreCalibratedClassifier:
    return _fit(BoostingSettings(max_iter=80), risk_data)


@pytest.fixture(scope="session")
def blend(risk_data: tuple[pd.DataFrame, ...]) -> ScoreCalibratedClassifier:
    """The mean log-odds of a scorecard and a booster, calibrated like the others."""
    members = (ScorecardSettings(max_bins=16), BoostingSettings(max_iter=80))
    return _fit(AverageSettings(members=members), risk_data)
