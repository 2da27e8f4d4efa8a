"""How the pathway effect model learns: its boosters and the doubly robust pseudo-outcomes.

:class:`models.pathways.PathwayEffectModel` fits three kinds of booster: an
outcome model and one referral-propensity model per programme on each fold
(the nuisances), and one final-stage regressor per programme (the relative
reduction). Their settings live here, with the doubly robust pseudo-outcome
that turns the nuisances' predictions into each person's estimated reduction
(what the final stage learns), so the model itself reads as the method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

#: Boosting rates of the nuisance models: 0.2 stops in about half the rounds
#: of 0.1 (so half the trees to fit and to evaluate for every counterfactual)
#: and gave the same policy value on a validation cohort (seed 11, not the
#: benchmark's).
OUTCOME_LEARNING_RATE = 0.2
PROPENSITY_LEARNING_RATE = 0.2
#: Final stage (see :func:`make_effect_regressor`).
EFFECT_LEARNING_RATE = 0.05


def make_nuisance_booster(
    seed: int, max_iter: int, learning_rate: float
) -> HistGradientBoostingClassifier:
    """Return an unfitted outcome or propensity model."""
    return HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=15,
        min_samples_leaf=100,
        early_stopping=True,
        random_state=seed,
    )


def make_effect_regressor(max_iter: int, seed: int) -> HistGradientBoostingRegressor:
    """Return an unfitted final-stage regressor of one programme's relative reduction."""
    # DR pseudo-outcomes are noisy (sd about 1 against effects of
    # 0.02-0.13): small trees, large leaves, a slow rate and a patient
    # stop keep the final stage from fitting noise. Chosen on a
    # validation cohort (seed 11), not on the benchmark's.
    return HistGradientBoostingRegressor(
        learning_rate=EFFECT_LEARNING_RATE,
        max_iter=max_iter,
        max_leaf_nodes=3,
        min_samples_leaf=1000,
        early_stopping=True,
        n_iter_no_change=20,
        random_state=seed,
    )


@dataclass(frozen=True, slots=True)
class PseudoOutcomes:
    """Cross-fitted quantities per person and programme, each of shape ``(n, k)``.

    ``reduction`` is the DR pseudo-outcome (absolute reduction in risk);
    ``untreated_risk`` the outcome model's risk with the person's other
    referrals as they were but not this one; ``propensity`` the referral
    propensity.
    """

    reduction: np.ndarray
    untreated_risk: np.ndarray
    propensity: np.ndarray


def doubly_robust_outcomes(
    risk: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: np.ndarray,
    referrals: np.ndarray,
    y: np.ndarray,
    propensity: np.ndarray,
    overlap: float,
) -> PseudoOutcomes:
    """Return DR pseudo-outcomes (reductions), untreated risks and propensities.

    ``risk(x, referrals)`` is an outcome model's re-offending probability
    under ``referrals``; ``propensity`` each referral's propensity given the
    person's other referrals. Propensities are clipped to ``overlap`` before
    they weight the residual.
    """
    actual = risk(x, referrals)
    residual = y - actual
    pseudo = np.empty(referrals.shape)
    untreated = np.empty(referrals.shape)
    for j in range(referrals.shape[1]):
        # One of "with j" and "without j" is what happened: only the
        # other one needs a prediction (half the outcome-model calls).
        flipped = referrals.copy()
        flipped[:, j] = 1 - flipped[:, j]
        counterfactual = risk(x, flipped)
        treated, e = referrals[:, j], propensity[:, j]
        with_j = np.where(treated == 1, actual, counterfactual)
        untreated[:, j] = np.where(treated == 1, counterfactual, actual)
        # Reduction = risk without - risk with, so the weighted residual
        # enters with the opposite sign of an effect on risk.
        weight = treated / np.clip(e, overlap, None) - (1 - treated) / np.clip(1 - e, overlap, None)
        pseudo[:, j] = untreated[:, j] - with_j - weight * residual
    return PseudoOutcomes(pseudo, untreated, propensity)
