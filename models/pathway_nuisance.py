"""Nuisance models of the doubly robust pathway learner: referral propensities and re-offending.

Split from :mod:`models.pathways` (which uses them) so that each file holds
one concept: here, the cross-fitted outcome and propensity boosters and the
doubly robust pseudo-outcomes they give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier


class _Owner(Protocol):
    random_state: int
    max_iter: int


def _booster(seed: int, max_iter: int, learning_rate: float) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=15,
        min_samples_leaf=100,
        early_stopping=True,
        random_state=seed,
    )


#: Boosting rates of the nuisance models: 0.2 stops in about half the rounds
#: of 0.1 (so half the trees to fit and to evaluate for every counterfactual)
#: and gave the same policy value on a validation cohort (seed 11, not the
#: benchmark's).
OUTCOME_LEARNING_RATE = 0.2
#: Referral residuals are kept at least this far from zero (R-learner).
R_MIN_RESIDUAL = 0.01
PROPENSITY_LEARNING_RATE = 0.2


@dataclass(frozen=True, slots=True)
class PseudoOutcomes:
    """Cross-fitted quantities per person and programme, each of shape ``(n, k)``.

    ``reduction`` is the DR pseudo-outcome (absolute reduction in risk);
    ``untreated_risk`` the outcome model's risk with the person's other
    referrals as they were but not this one; ``propensity`` the referral
    propensity; ``r_target`` and ``r_weight`` the R-learner's target and
    weight (least squares on them minimises the R-loss).
    """

    reduction: np.ndarray
    untreated_risk: np.ndarray
    propensity: np.ndarray
    r_target: np.ndarray
    r_weight: np.ndarray


@dataclass(frozen=True, slots=True)
class Nuisance:
    """Outcome and propensity models fitted on one fold."""

    outcome: HistGradientBoostingClassifier
    propensity: tuple[HistGradientBoostingClassifier | float, ...]

    @classmethod
    def fit(cls, x: np.ndarray, referrals: np.ndarray, y: np.ndarray, owner: _Owner) -> Nuisance:
        """Fit the outcome model and one propensity model per programme on one fold."""
        outcome = _booster(owner.random_state, owner.max_iter, OUTCOME_LEARNING_RATE).fit(
            np.column_stack([x, referrals]), y
        )
        propensity: list[HistGradientBoostingClassifier | float] = []
        for j in range(referrals.shape[1]):
            treated = referrals[:, j]
            if treated.min() == treated.max():  # nobody (or everybody) referred
                propensity.append(float(treated[0]))
                continue
            design = np.column_stack([x, np.delete(referrals, j, axis=1)])
            booster = _booster(owner.random_state + 1, owner.max_iter, PROPENSITY_LEARNING_RATE)
            propensity.append(booster.fit(design, treated))
        return cls(outcome, tuple(propensity))

    def risk(self, x: np.ndarray, referrals: np.ndarray) -> np.ndarray:
        """Return the outcome model's re-offending probability under ``referrals``."""
        return self.outcome.predict_proba(np.column_stack([x, referrals]))[:, 1]

    def propensities(self, x: np.ndarray, referrals: np.ndarray) -> np.ndarray:
        """Return each programme's referral propensity given the other referrals."""
        out = np.empty(referrals.shape)
        for j, model in enumerate(self.propensity):
            if isinstance(model, float):
                out[:, j] = model
            else:
                design = np.column_stack([x, np.delete(referrals, j, axis=1)])
                out[:, j] = model.predict_proba(design)[:, 1]
        return out

    def pseudo_outcomes(
        self, x: np.ndarray, referrals: np.ndarray, y: np.ndarray, overlap: float
    ) -> PseudoOutcomes:
        """Return DR pseudo-outcomes (reductions), untreated risks and propensities."""
        actual = self.risk(x, referrals)
        residual = y - actual
        propensity = self.propensities(x, referrals)
        pseudo = np.empty(referrals.shape)
        untreated = np.empty(referrals.shape)
        r_target = np.empty(referrals.shape)
        r_weight = np.empty(referrals.shape)
        for j in range(referrals.shape[1]):
            # One of "with j" and "without j" is what happened: only the
            # other one needs a prediction (half the outcome-model calls).
            flipped = referrals.copy()
            flipped[:, j] = 1 - flipped[:, j]
            counterfactual = self.risk(x, flipped)
            treated, e = referrals[:, j], propensity[:, j]
            with_j = np.where(treated == 1, actual, counterfactual)
            untreated[:, j] = np.where(treated == 1, counterfactual, actual)
            # Reduction = risk without - risk with, so the weighted residual
            # enters with the opposite sign of an effect on risk.
            weight = treated / np.clip(e, overlap, None) - (1 - treated) / np.clip(
                1 - e, overlap, None
            )
            pseudo[:, j] = untreated[:, j] - with_j - weight * residual
            # R-learner (Nie & Wager): residualised outcome on residualised
            # referral; the loss weights people by (t - e)^2, so those
            # (almost) always or never referred count little instead of
            # being blown up by 1 / e.
            marginal = e * with_j + (1 - e) * untreated[:, j]
            centred = treated - e
            centred = np.where(np.abs(centred) < R_MIN_RESIDUAL, R_MIN_RESIDUAL, centred)
            r_target[:, j] = -(y - marginal) / centred
            r_weight[:, j] = centred**2
        return PseudoOutcomes(pseudo, untreated, propensity, r_target, r_weight)
