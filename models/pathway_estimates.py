"""What a fitted pathway model says about people: estimates, intervals, recommendations.

Plain data and its reading, shared by :mod:`models.pathways` (which makes
:class:`PathwayEstimates`), :mod:`models.pathway_policy` (which chooses from
them) and serving (which answers with :func:`recommendations`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.schema import PRINCES_TRUST, Pathway, needs_of

#: The needs items behind each programme (Prince's Trust: education and employment).
PROGRAMME_NEEDS: dict[str, tuple[str, ...]] = {
    **{p.value: needs_of(p) for p in Pathway},
    PRINCES_TRUST: needs_of(Pathway.EDUCATION_EMPLOYMENT),
}


@dataclass(frozen=True, slots=True)
class PathwayEstimates:
    """Per person and programme: estimated effect, its intervals, and flags.

    Arrays have shape ``(n_people, n_programmes)`` in ``programmes`` order
    (``risk_without``: ``(n_people,)``); effects are absolute reductions in
    12-month re-offending probability (positive = the referral lowers risk).
    ``interval_low/high`` is the 95% interval of the *group's* mean reduction
    (people with similar estimates); ``person_low/high`` a per-person 95%
    interval around the person's own estimate (it always contains it).
    ``default_programme`` (index, -1 for none) is the programme with the
    largest confidently positive average effect; ``switch_margin`` how much
    a personal pick must beat it by (chosen without ground truth, see
    :mod:`models.pathway_policy`).
    """

    programmes: tuple[str, ...]
    effect: np.ndarray
    interval_low: np.ndarray
    interval_high: np.ndarray
    propensity: np.ndarray
    in_overlap: np.ndarray
    eligible: np.ndarray
    recommended: np.ndarray
    risk_without: np.ndarray
    person_low: np.ndarray
    person_high: np.ndarray
    default_programme: int = -1
    switch_margin: float = 0.0

    def ranked(self, row: int) -> list[int]:
        """Return programme indices of recommended programmes, largest effect first."""
        picks = np.flatnonzero(self.recommended[row])
        return [int(i) for i in picks[np.argsort(-self.effect[row, picks], kind="stable")]]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended programme for one person.

    ``interval`` is the 95% interval of the mean reduction among people whose
    estimate is like this person's (the group); ``person_interval`` the 95%
    interval of this person's own reduction (it contains
    ``estimated_reduction``). ``risk_without`` is the person's estimated
    12-month re-offending probability with no programme, ``risk_with`` with
    this programme alone. ``first_choice`` marks the served policy's pick
    (:func:`models.pathway_policy.served_choice`).
    """

    programme: str
    estimated_reduction: float
    interval: tuple[float, float]
    needs: tuple[str, ...]
    risk_without: float = float("nan")
    risk_with: float = float("nan")
    person_interval: tuple[float, float] = (float("nan"), float("nan"))
    first_choice: bool = False


def recommendations(
    estimates: PathwayEstimates, assessments: pd.DataFrame
) -> list[list[Recommendation]]:
    """Return, per person, the recommended programmes, largest estimated reduction first.

    ``needs`` lists the person's flagged needs items (score above 0) behind
    each programme. A programme outside the evidence (overlap), not open to
    the person (eligibility) or not clearly above zero is left out.
    """
    # One table read, not one per programme (a served request is one person).
    items = list(dict.fromkeys(item for needs in PROGRAMME_NEEDS.values() for item in needs))
    table = assessments[items].to_numpy(dtype=np.float64, na_value=0.0)
    values = {
        p: table[:, [items.index(item) for item in needs]] for p, needs in PROGRAMME_NEEDS.items()
    }
    from models.pathway_policy import served_choice  # imports this module: import late

    first = served_choice(estimates).programme
    out = []
    for row in range(len(assessments)):
        person = []
        for j in estimates.ranked(row):
            programme = estimates.programmes[j]
            flagged = tuple(
                item
                for item, value in zip(
                    PROGRAMME_NEEDS[programme], values[programme][row], strict=True
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
                    risk_without=float(estimates.risk_without[row]),
                    risk_with=float(estimates.risk_without[row] - estimates.effect[row, j]),
                    person_interval=(
                        float(estimates.person_low[row, j]),
                        float(estimates.person_high[row, j]),
                    ),
                    first_choice=bool(first[row] == j),
                )
            )
        out.append(person)
    return out
