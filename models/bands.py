"""Risk bands: low / medium / high / very high cut on the 12-month probability.

The Ministry of Justice's OGRS bands cut at 50 / 75 / 90 % on a two-year
scale. Under a constant hazard a two-year probability p2 becomes a one-year
probability ``1 - sqrt(1 - p2)``: 29 / 50 / 68 %. desist's defaults round
these to 30 / 50 / 70 % for its 12-month outcome. Configs may change them.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

BAND_NAMES: tuple[str, ...] = ("low", "medium", "high", "very high")
DEFAULT_CUTOFFS: tuple[float, float, float] = (0.30, 0.50, 0.70)


def _increasing(cutoffs: tuple[float, float, float]) -> tuple[float, float, float]:
    if not all(0 < c < 1 for c in cutoffs) or list(cutoffs) != sorted(set(cutoffs)):
        raise ValueError("cut-offs must be strictly increasing probabilities between 0 and 1")
    return cutoffs


class RiskBands(BaseModel):
    """Cut-offs on the probability: ``p < c1`` is low, ``c1 <= p < c2`` medium, and so on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cutoffs: Annotated[tuple[float, float, float], AfterValidator(_increasing)] = Field(
        default=DEFAULT_CUTOFFS,
        description="Lower bounds of the medium, high and very high bands.",
    )

    def band_index(self, probability: np.ndarray) -> np.ndarray:
        """Return 0-3 (low to very high) for each probability."""
        return np.searchsorted(np.asarray(self.cutoffs), probability, side="right")

    def band_names(self, probability: np.ndarray) -> np.ndarray:
        """Return the band name of each probability."""
        return np.asarray(BAND_NAMES, dtype=object)[self.band_index(probability)]

    def describe(self) -> list[str]:
        """Return each band as text, e.g. ``"medium: 30% to under 50%"``."""
        edges = [0.0, *self.cutoffs, 1.0]
        return [
            f"{name}: {lo:.0%} to {'under ' if hi < 1 else ''}{hi:.0%}"
            for name, lo, hi in zip(BAND_NAMES, edges[:-1], edges[1:], strict=True)
        ]
