"""The programmes a pathway model chooses among: their referral columns, needs and eligibility.

Facts of the programmes themselves, shared by the learned pathway model
(:mod:`models.pathways`), its recommendations (:mod:`models.pathway_estimates`)
and the rule-based baselines (:mod:`models.pathway_rules`).
"""

from __future__ import annotations

import numpy as np

from data.schema import (
    PRINCES_TRUST,
    PRINCES_TRUST_AGE_RANGE,
    PROGRAMMES,
    Pathway,
    needs_of,
)

#: The historic referral flag of each programme, in ``PROGRAMMES`` order.
REFERRAL_COLUMNS: tuple[str, ...] = tuple(f"referred_{p}" for p in PROGRAMMES)

#: The needs items behind each programme (Prince's Trust: education and employment).
PROGRAMME_NEEDS: dict[str, tuple[str, ...]] = {
    **{p.value: needs_of(p) for p in Pathway},
    PRINCES_TRUST: needs_of(Pathway.EDUCATION_EMPLOYMENT),
}


def eligible(programme: str, ages: np.ndarray) -> np.ndarray:
    """Return who may be referred to ``programme`` (Prince's Trust: ages 16-25 only)."""
    if programme != PRINCES_TRUST:
        return np.ones(ages.shape, dtype=bool)
    low, high = PRINCES_TRUST_AGE_RANGE
    return (ages >= low) & (ages <= high)
