"""The served pathway policy: which one programme each person is offered, and why.

One function decides, for the benchmark and for serving alike (issue 17:
the policy benchmarked is the policy served):

- a *personal* pick is the programme with the largest estimate among those
  recommended with confidence (eligible, inside the evidence, estimate above
  ``min_effect`` and the group's mean above zero at the family-wise level);
- the *default programme* is the best single programme: the one with the
  largest average effect that is clearly above zero on the training rows;
- a personal pick replaces the default only when its estimate beats the
  default's by at least the switch margin (chosen per fit by the
  out-of-fold doubly robust value, so small cohorts shrink to the default);
- with no confident personal pick, the person is offered the default when
  it is open to them and inside the evidence, else nothing (-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.pathway_estimates import PathwayEstimates

#: The choice of a person who is offered no programme.
NO_PROGRAMME = -1


def served_programmes(
    effect: np.ndarray,
    confident: np.ndarray,
    open_to: np.ndarray,
    default: int,
    margin: float,
) -> np.ndarray:
    """Return each person's offered programme index (``NO_PROGRAMME`` for none).

    Parameters
    ----------
    effect
        Estimated reductions, shape ``(n, k)``.
    confident
        Programmes recommended with confidence, shape ``(n, k)``.
    open_to
        Eligible and inside the evidence, shape ``(n, k)``: where the
        default may be offered.
    default
        The default programme's index, or ``NO_PROGRAMME``.
    margin
        How much a personal pick must beat the default's estimate by.
    """
    n = effect.shape[0]
    rows = np.arange(n)
    best = np.argmax(np.where(confident, effect, -np.inf), axis=1)
    personal = confident.any(axis=1)
    if default < 0:
        return np.where(personal, best, NO_PROGRAMME)
    default_ok = open_to[:, default]
    beats = effect[rows, best] - effect[:, default] >= margin
    use_personal = personal & (~default_ok | beats | (best == default))
    return np.where(use_personal, best, np.where(default_ok, default, NO_PROGRAMME))


@dataclass(frozen=True, slots=True)
class ServedChoice:
    """Each person's offered programme and how it was reached.

    ``programme`` holds indices (``NO_PROGRAMME`` for none); ``confident``
    is True where the offered programme is itself recommended with
    confidence for the person, False where it is the default programme
    offered for want of a confident personal pick.
    """

    programme: np.ndarray
    confident: np.ndarray

    @property
    def offered(self) -> np.ndarray:
        """True where a programme is offered."""
        return self.programme >= 0


def served_choice(estimates: PathwayEstimates) -> ServedChoice:
    """Return the served policy's choice for every person in ``estimates``."""
    open_to = estimates.eligible & estimates.in_overlap
    choice = served_programmes(
        estimates.effect,
        estimates.recommended,
        open_to,
        estimates.default_programme,
        estimates.switch_margin,
    )
    rows = np.arange(choice.size)
    confident = (choice >= 0) & estimates.recommended[rows, np.maximum(choice, 0)]
    return ServedChoice(programme=choice, confident=confident)
