"""Confidence notes of pathway estimates: groups by estimated effect, and their intervals.

People are grouped by their estimated effect of a programme (quantiles of
out-of-fold estimates); the mean doubly robust pseudo-outcome of a group and
its 95% interval is the confidence note of everyone in it. A programme is
recommended only where the group's mean is above zero at a family-wise level
over every group of every programme (one-sided, Bonferroni), so that a world
in which nothing works yields (almost) no recommendation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

#: Family-wise error rate of the "above zero" tests behind recommendations.
FAMILY_WISE_ALPHA = 0.05

#: Smallest group whose mean is given an interval (smaller groups get none).
MIN_GROUP_SIZE = 30


def family_wise_z(n_tests: int) -> float:
    """Return the one-sided Bonferroni critical value for ``n_tests`` tests at 5%.

    Every confidence group of every programme is one test: with ten groups
    and eight programmes, 5% / 8 per test (the earlier level) would let a
    world with no effect at all yield a recommendation about a third of the
    time.
    """
    return float(norm.ppf(1 - FAMILY_WISE_ALPHA / n_tests))


@dataclass(frozen=True, slots=True)
class ConfidenceGroups:
    """One programme's groups: effect cut points, and per group its interval and floor.

    ``low``, ``high`` and ``floor`` have one entry per group (``edges.size + 1``),
    ``NaN`` for a group of fewer than :data:`MIN_GROUP_SIZE` people.
    """

    edges: np.ndarray
    low: np.ndarray
    high: np.ndarray
    floor: np.ndarray


def confidence_groups(
    estimated: np.ndarray, pseudo: np.ndarray, n_groups: int, z: float
) -> ConfidenceGroups:
    """Group people by ``estimated`` effect and summarise each group's ``pseudo``-outcomes.

    Parameters
    ----------
    estimated
        Each person's estimated effect, from a model that did not learn from
        them (so a group's interval is not flattered by the model fitting its
        own noise).
    pseudo
        Each person's doubly robust pseudo-outcome.
    n_groups
        Quantile groups asked for (fewer when estimates tie).
    z
        Critical value of the one-sided floor (see :func:`family_wise_z`).
    """
    edges = np.unique(np.quantile(estimated, np.linspace(0, 1, n_groups + 1)[1:-1]))
    group = np.searchsorted(edges, estimated, side="right")
    low, high, floor = (np.full(edges.size + 1, np.nan) for _ in range(3))
    for g in range(edges.size + 1):
        values = pseudo[group == g]
        if values.size >= MIN_GROUP_SIZE:
            error = values.std(ddof=1) / np.sqrt(values.size)
            low[g], high[g] = values.mean() - 1.96 * error, values.mean() + 1.96 * error
            floor[g] = values.mean() - z * error
    return ConfidenceGroups(edges, low, high, floor)
