"""What a pathway model estimates for each person, and the recommendations read from it.

:class:`PathwayEstimates` is the output of
:meth:`models.pathways.PathwayEffectModel.estimate`: per person and programme,
the estimated effect, its confidence interval, and the overlap, eligibility
and recommendation flags. :func:`recommendations` turns it into what a
practitioner sees: the recommended programmes, largest estimated reduction
first, each with the person's flagged needs behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.pathway_programmes import PROGRAMME_NEEDS


@dataclass(frozen=True, slots=True)
class PathwayEstimates:
    """Per person and programme: estimated effect, its group interval, and flags.

    Arrays have shape ``(n_people, n_programmes)`` in ``programmes`` order;
    effects are absolute reductions in 12-month re-offending probability
    (positive = the referral lowers risk).
    """

    programmes: tuple[str, ...]
    effect: np.ndarray
    interval_low: np.ndarray
    interval_high: np.ndarray
    propensity: np.ndarray
    in_overlap: np.ndarray
    eligible: np.ndarray
    recommended: np.ndarray

    def ranked(self, row: int) -> list[int]:
        """Return programme indices of recommended programmes, largest effect first."""
        picks = np.flatnonzero(self.recommended[row])
        return [int(i) for i in picks[np.argsort(-self.effect[row, picks], kind="stable")]]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended programme for one person."""

    programme: str
    estimated_reduction: float
    interval: tuple[float, float]
    needs: tuple[str, ...]


def recommendations(
    estimates: PathwayEstimates, assessments: pd.DataFrame
) -> list[list[Recommendation]]:
    """Return, per person, the recommended programmes, largest estimated reduction first.

    ``needs`` lists the person's flagged needs items (score above 0) behind
    each programme. A programme outside the evidence (overlap), not open to
    the person (eligibility) or not clearly above zero is left out.
    """
    values = {
        p: assessments[list(items)].to_numpy(dtype=np.float64, na_value=0.0)
        for p, items in PROGRAMME_NEEDS.items()
    }
    return recommendations_from_needs(estimates, values)


def recommendations_from_needs(
    estimates: PathwayEstimates, needs: dict[str, np.ndarray]
) -> list[list[Recommendation]]:
    """Return :func:`recommendations` from the needs scores themselves, without a table.

    ``needs`` holds, per programme, its :data:`PROGRAMME_NEEDS` items' scores
    per person, shape ``(n, items)``, ``0`` where not assessed; there is one
    answer per row of ``needs`` (the first ``n`` people of ``estimates``).
    """
    out = []
    for row in range(len(needs[estimates.programmes[0]])):
        person = []
        for j in estimates.ranked(row):
            programme = estimates.programmes[j]
            flagged = tuple(
                item
                for item, value in zip(
                    PROGRAMME_NEEDS[programme], needs[programme][row], strict=True
                )
                if value > 0
            )
            person.append(
                Recommendation(
                    programme=programme,
                    estimated_reduction=float(estimates.effect[row, j]),
                    interval=(
                        float(estimates.interval_low[row, j]),
                        float(estimates.interval_high[row, j]),
                    ),
                    needs=flagged,
                )
            )
        out.append(person)
    return out
