"""Reading pathway estimates: the recommended programmes, ranked, with the needs behind them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.pathway_estimates import PathwayEstimates, recommendations
from models.pathway_programmes import PROGRAMME_NEEDS

PROGRAMMES = ("drugs_alcohol", "accommodation", "finance_debt")


def estimates(effect: list[list[float]], recommended: list[list[bool]]) -> PathwayEstimates:
    """Estimates of three programmes; intervals are the effect plus or minus 0.01."""
    values = np.array(effect)
    flags = np.array(recommended)
    return PathwayEstimates(
        programmes=PROGRAMMES,
        effect=values,
        interval_low=values - 0.01,
        interval_high=values + 0.01,
        propensity=np.full(values.shape, 0.3),
        in_overlap=np.ones(values.shape, dtype=bool),
        eligible=np.ones(values.shape, dtype=bool),
        recommended=flags,
    )


def people(rows: int) -> pd.DataFrame:
    """Assessments with every needs item flagged 1 but drug misuse (0)."""
    items = {item for needs in PROGRAMME_NEEDS.values() for item in needs}
    frame = pd.DataFrame({item: [1.0] * rows for item in sorted(items)})
    frame["drug_misuse"] = 0.0
    frame.loc[0, "debt"] = np.nan  # not assessed: not a flagged need
    return frame


def test_only_recommended_programmes_are_ranked_largest_effect_first() -> None:
    found = estimates([[0.02, 0.05, 0.03], [0.04, 0.01, 0.02]], [[True, True, False]] * 2)
    assert found.ranked(0) == [1, 0]
    assert found.ranked(1) == [0, 1]


def test_recommendations_carry_their_interval_and_the_persons_flagged_needs() -> None:
    found = estimates([[0.02, 0.05, 0.03], [0.0, 0.0, 0.0]], [[True, True, True], [False] * 3])
    first, second = recommendations(found, people(2))
    assert [r.programme for r in first] == ["accommodation", "finance_debt", "drugs_alcohol"]
    assert first[0].estimated_reduction == 0.05
    assert first[0].interval == (0.05 - 0.01, 0.05 + 0.01)
    assert first[0].needs == PROGRAMME_NEEDS["accommodation"]
    assert first[1].needs == ("benefit_dependence",)  # debt not assessed
    assert first[2].needs == ("alcohol_misuse",)  # drug misuse scored 0
    assert second == []
