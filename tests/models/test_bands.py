from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from models.bands import BAND_NAMES, RiskBands


def test_band_edges_are_lower_bounds() -> None:
    bands = RiskBands(cutoffs=(0.3, 0.5, 0.7))
    p = np.array([0.0, 0.2999, 0.3, 0.4999, 0.5, 0.7, 0.99])
    assert bands.band_names(p).tolist() == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "very high",
        "very high",
    ]


@pytest.mark.parametrize(
    "cutoffs", [(0.5, 0.3, 0.7), (0.3, 0.3, 0.7), (0.0, 0.5, 0.7), (0.3, 0.5, 1.0)]
)
def test_bad_cutoffs_are_refused(cutoffs: tuple[float, float, float]) -> None:
    with pytest.raises(ValidationError, match="strictly increasing"):
        RiskBands(cutoffs=cutoffs)


def test_describe_lists_every_band() -> None:
    text = RiskBands().describe()
    assert [line.split(":")[0] for line in text] == list(BAND_NAMES)
    assert text[1] == "medium: 30% to under 50%"
