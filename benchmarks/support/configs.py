"""A training config small enough for a test or a fault benchmark to train in seconds."""

from __future__ import annotations

from data.synthetic import SynthConfig
from models.risk import BoostingSettings, ScorecardSettings
from pipeline.config import DatasetConfig, EvaluationConfig, FairnessConfig, RiskTrainConfig


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
