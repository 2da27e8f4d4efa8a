"""Training settings the serving and mission tests share: gates a small model passes, a tiny job.

Models fitted on a few thousand synthetic people are noisy: these gates let them
through, so that a test can serve what it trained.
"""

from __future__ import annotations

from data.synthetic import SynthConfig
from pipeline.config import (
    DatasetConfig,
    GateConfig,
    PathwayGateConfig,
    PathwayModelConfig,
    PathwayTrainConfig,
)

#: Risk gates a small model passes: any AUC against the champion.
LOOSE_GATES = GateConfig(auc_tolerance=1.0)
#: Pathway gates a small model passes: any gain over the RNR policy, even a loss.
LOOSE_PATHWAY_GATES = PathwayGateConfig(min_gain_over_rnr=-1.0)


def tiny_pathway_config(gates: PathwayGateConfig | None = None) -> PathwayTrainConfig:
    """Return a pathway job on 12,000 synthetic people (seconds); ``gates``: its own gates."""
    return PathwayTrainConfig(
        dataset=DatasetConfig(name="tiny", synthetic=SynthConfig(rows=12_000, seed=5)),
        model=PathwayModelConfig(max_iter=60),
        gates=gates or PathwayGateConfig(),
    )
