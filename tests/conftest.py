"""Fixtures shared by every test package: seeded cohorts, small and large."""

from __future__ import annotations

import os

# Before anything imports MLflow: tests run offline.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import pandas as pd
import pytest

from data.synthetic import SynthConfig, generate_cohort


@pytest.fixture(scope="session")
def small_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """2,000 people: enough for mechanics, cheap enough for every test."""
    return generate_cohort(SynthConfig(rows=2_000, seed=11))


@pytest.fixture(scope="session")
def large_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """200,000 people under practice referrals, for statistical checks (about 1 s)."""
    return generate_cohort(SynthConfig(rows=200_000, seed=12))


@pytest.fixture(scope="session")
def randomised_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """400,000 people with randomised referrals: a trial the generator can run."""
    return generate_cohort(SynthConfig(rows=400_000, seed=13, referrals="randomised"))
