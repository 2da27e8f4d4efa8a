"""Fixtures for training jobs: tiny configs and MLflow stores under tmp paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.synthetic import SynthConfig
from models.risk import BoostingSettings, ScorecardSettings
from pipeline.config import DatasetConfig, EvaluationConfig, FairnessConfig, RiskTrainConfig
from pipeline.tracking import Tracker
from pipeline.train_risk import TrainResult, train


def small_config(**changes: object) -> RiskTrainConfig:
    """A config that trains both families on 4,000 people in a few seconds."""
    base = RiskTrainConfig(
        dataset=DatasetConfig(name="synthetic-test", synthetic=SynthConfig(rows=4_000, seed=3)),
        features=(
            "age",
            "total_sanctions",
            "months_offence_free",
            "offence_category",
            "drug_misuse",
            "unemployed",
            "no_settled_accommodation",
            "procriminal_attitudes",
            "sex",
        ),
        audit_only=("ethnicity",),
        models=(ScorecardSettings(), BoostingSettings(max_iter=40)),
        evaluation=EvaluationConfig(n_bootstrap=30),
        fairness=FairnessConfig(
            attribute="ethnicity", group="black", reference="white", n_bootstrap=20
        ),
    )
    return base.model_copy(update=changes)


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    """An empty embedded store (SQLite + local artifacts) for one test."""
    return Tracker.for_home(tmp_path / "desist-home")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tracker, TrainResult]:
    """One completed training job, shared by the tests that only read it."""
    store = Tracker.for_home(tmp_path_factory.mktemp("trained-home"))
    return store, train(small_config(), tracker=store)
