"""The served pathway policy: the one programme each person is offered, and why.

One function decides for the benchmark and for a cohort alike (issue 17:
the policy benchmarked is the policy served):

- the person's *personal pick* is the programme with the largest estimate
  among those open to them (eligible and inside the evidence);
- it is offered when it is itself recommended with confidence (estimate
  above ``min_effect`` and its group's mean above zero at the family-wise
  level) and its estimate beats the default programme's by at least
  ``margin``;
- otherwise the person is offered the *default programme*, the best single
  programme chosen truth-free on the training rows
  (``PathwayEffectModel.default_programme_``), when it is open to them, else
  nothing (:data:`NO_PROGRAMME`).

The gate decides *whether* to personalise, not *which* programme: a person
whose top estimate is not confident falls back to the default, rather than
to their best confident programme, which may be a lesser one. At small
cohorts fewer groups are confident, so the policy shrinks towards the
default by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.pathway_estimates import PathwayEstimates

#: The choice of a person who is offered no programme.
NO_PROGRAMME = -1


@dataclass(frozen=True, slots=True)
class ServedChoice:
    """Each person's offered programme and how it was reached.

    ``programme`` holds indices (:data:`NO_PROGRAMME` for none);
    ``confident`` is True where the offered programme is a personal pick
    recommended with confidence, False where it is the default programme
    (or nothing).
    """

    programme: np.ndarray
    confident: np.ndarray

    @property
    def offered(self) -> np.ndarray:
        """True where a programme is offered."""
        return self.programme >= 0


def served_choice(estimates: PathwayEstimates, default: int, margin: float = 0.0) -> ServedChoice:
    """Return the served policy's choice for every person in ``estimates``.

    Parameters
    ----------
    estimates
        The model's estimates for the people.
    default
        The default programme's index (``PathwayEffectModel.default_programme_``),
        or :data:`NO_PROGRAMME` when no programme is clearly above zero.
    margin
        How much a personal pick's estimate must beat the default's by.
    """
    open_to = estimates.eligible & estimates.in_overlap
    rows = np.arange(open_to.shape[0])
    top = np.argmax(np.where(open_to, estimates.effect, -np.inf), axis=1)
    personal = open_to[rows, top] & estimates.recommended[rows, top]
    if default < 0:
        return ServedChoice(np.where(personal, top, NO_PROGRAMME), personal)
    beats = estimates.effect[rows, top] - estimates.effect[:, default] >= margin
    personal &= beats | (top == default) | ~open_to[:, default]
    fallback = np.where(open_to[:, default], default, NO_PROGRAMME)
    return ServedChoice(np.where(personal, top, fallback), personal)


@dataclass(frozen=True, slots=True)
class PersonFigures:
    """What a practitioner reads for each person and programme (issue 17, item 6).

    ``risk_without`` is the person's estimated 12-month re-offending
    probability with no referral, shape ``(n,)``; ``risk_with`` that with a
    referral to each programme alone, ``(n, k)``. ``low`` and ``high`` are
    the person's interval: their own estimate give or take the half-width of
    the 95% interval of the group mean their estimate was checked against,
    so it always contains the estimate; it says how precisely people like
    them are measured, not how far their own effect may differ from it.
    """

    risk_without: np.ndarray
    risk_with: np.ndarray
    low: np.ndarray
    high: np.ndarray


def person_figures(estimates: PathwayEstimates, risk_without: np.ndarray) -> PersonFigures:
    """Return each person's risk without and with each programme, and their interval.

    Parameters
    ----------
    estimates
        The model's estimates for the people.
    risk_without
        The model's risk with no referral (``PathwayEffectModel.baseline_risk``).
    """
    half = np.nan_to_num((estimates.interval_high - estimates.interval_low) / 2, nan=np.inf)
    risk_with = np.clip(risk_without[:, None] - estimates.effect, 0.0, 1.0)
    return PersonFigures(
        risk_without=risk_without,
        risk_with=risk_with,
        low=estimates.effect - half,
        high=estimates.effect + half,
    )
