"""Synthetic outcomes and probabilities with known calibration."""

from __future__ import annotations

import numpy as np


def calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are true probabilities: each y is drawn from its own p."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 5, n)
    y = (rng.random(n) < p).astype(int)
    return y, p
