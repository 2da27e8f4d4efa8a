"""A small fairness audit with a known disparity: two groups, one calibrated score."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from models.bands import RiskBands
from pipeline.comparison import OperatingPoint, ScoredTest
from pipeline.config import FairnessConfig
from pipeline.fairness import FairnessAudit, audit_fairness

CONFIG = FairnessConfig(group="b", reference="a", attribute="group", n_bootstrap=20)


def calibrated_two_groups() -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """A calibrated score where group b re-offends more often than group a."""
    rng = np.random.default_rng(5)
    group = np.where(rng.random(4_000) < 0.5, "a", "b").astype(object)
    group[:30] = "tiny"
    risk = np.clip(rng.beta(2, 3, 4_000) + np.where(group == "b", 0.15, 0.0), 0.01, 0.99)
    y = (rng.random(4_000) < risk).astype(int)
    return y, risk, pd.Series(group)


@cache
def model_and_tool_audit() -> FairnessAudit:
    """Audit a probability ("model", banded) and its decile ("tool") of the two groups.

    Computed once per test session (the bootstrap takes seconds); the audit is
    frozen and no test changes its tables.
    """
    y, risk, group = calibrated_two_groups()
    models = [
        ScoredTest("model", risk, risk, (OperatingPoint("p >= 0.5", 0.5),)),
        ScoredTest("tool", np.ceil(risk * 10), risk, (OperatingPoint("tool >= 5", 5),)),
    ]
    return audit_fairness(
        y, models, {"group": group}, bands=RiskBands(), banded=["model"], config=CONFIG, seed=0
    )
