"""Training configs small enough for a test or a benchmark to train in seconds.

Models fitted on a few thousand synthetic people are noisy: the loose gates
let them through, so that a test or a benchmark can serve what it trained.
"""

from __future__ import annotations

from data.synthetic_world import SynthConfig
from models.risk import BoostingSettings, ScorecardSettings
from pipeline.config import (
    DatasetConfig,
    EvaluationConfig,
    FairnessConfig,
    GateConfig,
    PathwayGateConfig,
    PathwayModelConfig,
    PathwayTrainConfig,
    RiskTrainConfig,
)

#: Risk gates a small model passes: any AUC against the champion.
LOOSE_GATES = GateConfig(auc_tolerance=1.0)
#: Pathway gates a small model passes: any gain over the RNR policy, even a loss.
LOOSE_PATHWAY_GATES = PathwayGateConfig(min_gain_over_rnr=-1.0)


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


def tiny_pathway_config(gates: PathwayGateConfig | None = None) -> PathwayTrainConfig:
    """Return a pathway job on 12,000 synthetic people (seconds); ``gates``: its own gates."""
    return PathwayTrainConfig(
        dataset=DatasetConfig(name="tiny", synthetic=SynthConfig(rows=12_000, seed=5)),
        model=PathwayModelConfig(max_iter=60),
        gates=gates or PathwayGateConfig(),
    )
