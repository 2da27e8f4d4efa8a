"""Allocation under places: at most one programme per person, limited places per programme.

Given each person's estimated reduction per programme, which pairs are
allowed (eligible, inside the evidence, recommended by the served policy's
confidence rule) and the places of each programme, :func:`allocate` finds
the assignment that maximises the total estimated reduction. It is a
transportation problem: a linear programme (``scipy.optimize.linprog``,
HiGHS) whose constraint matrix is totally unimodular, so its optimal vertex
is already 0/1 and no rounding is needed.

:func:`highest_need_first` is the rule it is compared with: people in order
of their highest needs score, each given their highest-need programme that
still has a place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_array, vstack

from data.schema import PROGRAMMES
from models.pathway_estimates import PathwayEstimates

if TYPE_CHECKING:
    import pandas as pd

    from models.pathways import PathwayEffectModel

#: The allocation of a person who gets no place.
NO_PLACE = -1


class AllocationError(RuntimeError):
    """The solver did not reach an optimal allocation."""


@dataclass(frozen=True, slots=True)
class Allocation:
    """Who gets which programme.

    ``programme`` holds one index per person (``NO_PLACE`` for none);
    ``total`` the summed value of the allocated pairs; ``filled`` the
    places used per programme.
    """

    programme: np.ndarray
    total: float
    filled: np.ndarray


def allocate(
    value: np.ndarray,
    allowed: np.ndarray,
    places: np.ndarray,
    priority: np.ndarray | None = None,
) -> Allocation:
    """Maximise the total value with at most one programme per person and limited places.

    Parameters
    ----------
    value
        Estimated reduction per person and programme, shape ``(n, k)``.
    allowed
        Pairs that may be allocated, shape ``(n, k)``; pairs with a value of
        zero or less are never allocated (a place must do some good).
    places
        Places per programme, shape ``(k,)``, non-negative integers.
    priority
        Pairs placed first, shape ``(n, k)`` (the confidence rule's pairs):
        the best allocation of the priority pairs is solved first, then the
        places it leaves go, by a second solve, to the people it left out,
        over all ``allowed`` pairs (next best positive estimates).

    Raises
    ------
    AllocationError
        If the solver fails (it should not: the problem is always feasible).
    """
    value = np.asarray(value, dtype=np.float64)
    places = np.asarray(places, dtype=np.float64)
    n, k = value.shape
    if priority is not None:
        allowed = np.asarray(allowed, dtype=bool)
        first = allocate(value, allowed & np.asarray(priority, dtype=bool), places)
        rest = allowed & (first.programme < 0)[:, None]
        second = allocate(value, rest, places - first.filled)
        out = np.where(first.programme >= 0, first.programme, second.programme)
        return Allocation(out, first.total + second.total, first.filled + second.filled)
    if places.shape != (k,) or (places < 0).any():
        raise ValueError(f"places must be {k} non-negative numbers, got {places}")
    usable = np.asarray(allowed, dtype=bool) & (value > 0)
    person, programme = np.nonzero(usable)
    out = np.full(n, NO_PLACE)
    if person.size == 0:
        return Allocation(out, 0.0, np.zeros(k, dtype=int))
    m = person.size
    columns = np.arange(m)
    one_each = csr_array((np.ones(m), (person, columns)), shape=(n, m))
    capacity = csr_array((np.ones(m), (programme, columns)), shape=(k, m))
    result = linprog(
        -value[person, programme],
        A_ub=vstack([one_each, capacity]).tocsr(),
        b_ub=np.concatenate([np.ones(n), places]),
        bounds=(0, 1),
        method="highs",
    )
    if result.status != 0:
        raise AllocationError(f"allocation solver failed: {result.message}")
    chosen = result.x > 0.5
    out[person[chosen]] = programme[chosen]
    filled = np.bincount(programme[chosen], minlength=k)
    return Allocation(out, float(value[person[chosen], programme[chosen]].sum()), filled)


def allocation_pairs(
    estimates: PathwayEstimates,
    programme_confident: np.ndarray,
    default: int = -1,
    rule: str = "programme",
) -> np.ndarray:
    """Return which person-programme pairs an allocation may use, shape ``(n, k)``.

    Always: eligible, inside the evidence and an estimate above zero; that
    alone is ``rule="positive"`` (every place can go to someone estimated to
    gain), as long as a ``default`` programme exists (one programme clearly
    above zero); without one, only the recommended pairs. ``rule="group"``:
    only pairs recommended with confidence (group mean
    above zero at the family-wise level), plus the ``default`` programme
    (the served policy's fallback); ``rule="programme"``: any pair whose
    *programme's* average effect is clearly above zero
    (``programme_confident``, one family-wise test per programme), so that
    places left over in one programme go to the people for whom another is
    estimated to help most.
    """
    open_to = estimates.eligible & estimates.in_overlap & (estimates.effect > 0)
    if rule == "positive":
        # With no programme clearly above zero (no default) the estimates
        # are not trusted to fill places: the confidence rule's pairs only.
        return open_to if default >= 0 else open_to & estimates.recommended
    if rule == "group":
        pairs = open_to & estimates.recommended
        if default >= 0:
            pairs[:, default] |= open_to[:, default]
        return pairs
    if rule != "programme":
        raise ValueError(f"rule must be 'positive', 'group' or 'programme', got {rule!r}")
    return open_to & np.asarray(programme_confident, dtype=bool)[None, :]


def allocate_cohort(
    model: PathwayEffectModel, assessments: pd.DataFrame, places: np.ndarray
) -> Allocation:
    """Allocate a cohort's places with a fitted pathway model (``desist allocate``).

    The confidence rule's pairs (confident personal picks and the default
    programme) are placed first; the places they leave go to the next best
    positive estimates among eligible pairs inside the evidence, as in
    ``benchmarks/bench_pathways.py``'s ``desist_allocation``. A model saved
    before the default programme existed has no programme-level figures:
    its confident pairs alone are placed first.
    """
    return allocate_estimates(model, model.estimate(assessments), places)


def allocate_estimates(
    model: PathwayEffectModel, estimates: PathwayEstimates, places: np.ndarray
) -> Allocation:
    """Allocate places from the model's estimates of a cohort (:func:`allocate_cohort`'s rule).

    For a caller that reads the estimates again (``POST /v1/pathway-allocations``
    reports each person's risk with the programme allocated): the cohort is
    estimated once, and allocated by the same rule as :func:`allocate_cohort`.
    """
    floors: dict[str, float] = getattr(model, "programme_floor_", {})
    confident = np.array([floors.get(p, -1.0) > 0 for p in PROGRAMMES])
    default = int(getattr(model, "default_programme_", NO_PLACE))
    return allocate(
        estimates.effect,
        allocation_pairs(estimates, confident, default, "positive"),
        places,
        priority=allocation_pairs(estimates, confident, default, "group"),
    )


def highest_need_first(need: np.ndarray, allowed: np.ndarray, places: np.ndarray) -> np.ndarray:
    """Return the rule's allocation: highest needs score first, their highest-need open programme.

    ``need`` is the summed needs score per person and programme, shape
    ``(n, k)``; ties go to the earlier person and programme. A person whose
    allowed programmes are all full, or who has no flagged need, gets
    ``NO_PLACE``.
    """
    need = np.where(allowed, np.asarray(need, dtype=np.float64), -np.inf)
    left = np.asarray(places, dtype=np.int64).copy()
    out = np.full(need.shape[0], NO_PLACE)
    order = np.argsort(-need.max(axis=1), kind="stable")
    preference = np.argsort(-need, axis=1, kind="stable")
    for person in order:
        for j in preference[person]:
            if need[person, j] <= 0:
                break
            if left[j] > 0:
                out[person] = j
                left[j] -= 1
                break
    return out


def allocation_shares(allocation: np.ndarray, groups: np.ndarray) -> dict[str, dict[str, float]]:
    """Return, per group label, its share of the cohort and of the places allocated."""
    placed = allocation >= 0
    out: dict[str, dict[str, float]] = {}
    for label in sorted({str(g) for g in groups}):
        member = np.array([str(g) == label for g in groups])
        out[label] = {
            "cohort_share": round(float(member.mean()), 4),
            "allocated_share": round(float(member[placed].mean()), 4) if placed.any() else 0.0,
            "allocated_rate": round(float(placed[member].mean()), 4),
        }
    return out
