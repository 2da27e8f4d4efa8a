"""A seeded cohort of two programmes referred at random: for tests of the pathway learners."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np


class TwoProgrammeCohort(NamedTuple):
    """One feature, two referrals drawn with probability 0.6 each, and the 0/1 outcome."""

    x: np.ndarray
    referrals: np.ndarray
    outcome: np.ndarray
    propensity: np.ndarray


def two_programme_cohort(
    risk: Callable[[np.ndarray, np.ndarray], np.ndarray], n: int = 40_000, seed: int = 3
) -> TwoProgrammeCohort:
    """Return ``n`` people whose outcome is drawn from ``risk(x, referrals)``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1))
    propensity = np.full((n, 2), 0.6)
    referrals = (rng.random((n, 2)) < propensity).astype(float)
    outcome = (rng.random(n) < risk(x, referrals)).astype(float)
    return TwoProgrammeCohort(x, referrals, outcome, propensity)
