"""Rule-based ways to choose a pathway: the baselines a learned recommender must beat.

- random: any eligible programme, uniformly;
- most common need: the person's flagged pathway that is flagged most often
  in the cohort (everyone gets the cohort's most common one when nothing is
  flagged);
- Risk-Need-Responsivity (RNR): the pathway with the highest summed needs
  score (0/1/2 per item, like the Programme Needs Identifier's domain
  scores), ties to the earlier pathway;
- naive learner: per programme, the difference in re-offending between
  referred and not referred people with the same summed needs score of that
  programme. It ignores why people were referred, so it is confounded.

Each returns one programme index per person, in ``PROGRAMMES`` order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.schema import PROGRAMMES
from models.pathway_programmes import PROGRAMME_NEEDS, REFERRAL_COLUMNS, eligible


def need_scores(assessments: pd.DataFrame) -> np.ndarray:
    """Return summed needs items per programme (not assessed = 0), shape ``(n, k)``."""
    return np.column_stack(
        [
            assessments[list(PROGRAMME_NEEDS[p])].to_numpy(dtype=np.float64, na_value=0.0).sum(1)
            for p in PROGRAMMES
        ]
    )


def eligibility(assessments: pd.DataFrame) -> np.ndarray:
    """Who may be referred to each programme, shape ``(n, k)``."""
    ages = assessments["age"].to_numpy(dtype=np.float64)
    return np.column_stack([eligible(p, ages) for p in PROGRAMMES])


def random_policy(assessments: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Choose an eligible programme uniformly at random."""
    allowed = eligibility(assessments)
    noise = np.random.default_rng(seed).random(allowed.shape)
    return np.argmax(np.where(allowed, noise, -1.0), axis=1)


def most_common_need_policy(assessments: pd.DataFrame) -> np.ndarray:
    """Choose the person's flagged programme that is flagged most often in the cohort."""
    flagged = (need_scores(assessments) > 0) & eligibility(assessments)
    prevalence = flagged.mean(axis=0)
    ranked = np.where(flagged, prevalence, -1.0)
    fallback = int(np.argmax(prevalence))
    choice = np.argmax(ranked, axis=1)
    return np.where(flagged.any(axis=1), choice, fallback)


def rnr_policy(assessments: pd.DataFrame) -> np.ndarray:
    """Choose the eligible programme with the highest summed needs score."""
    scores = np.where(eligibility(assessments), need_scores(assessments), -1.0)
    return np.argmax(scores, axis=1)


class NaivePathwayModel:
    """Referred-minus-not-referred outcome gaps by needs score, ignoring propensity.

    Attributes
    ----------
    gaps_ : ndarray
        Shape ``(k, max_score + 1)``: estimated reduction per programme and
        summed needs score.
    """

    def fit(self, data: pd.DataFrame, outcome: np.ndarray) -> NaivePathwayModel:
        """Tabulate outcome gaps from historic referrals."""
        scores = need_scores(data).astype(int)
        referred = data[list(REFERRAL_COLUMNS)].to_numpy(dtype=bool)
        y = np.asarray(outcome, dtype=np.float64)
        top = int(scores.max()) + 1
        self.gaps_ = np.zeros((len(PROGRAMMES), top))
        for j in range(len(PROGRAMMES)):
            for level in range(top):
                at = scores[:, j] == level
                treated, control = at & referred[:, j], at & ~referred[:, j]
                if treated.sum() >= 20 and control.sum() >= 20:
                    self.gaps_[j, level] = y[control].mean() - y[treated].mean()
        return self

    def estimate(self, assessments: pd.DataFrame) -> np.ndarray:
        """Return the naive estimated reduction per person and programme."""
        scores = np.clip(need_scores(assessments).astype(int), 0, self.gaps_.shape[1] - 1)
        return np.column_stack([self.gaps_[j, scores[:, j]] for j in range(len(PROGRAMMES))])

    def policy(self, assessments: pd.DataFrame) -> np.ndarray:
        """Choose the eligible programme with the largest naive estimate."""
        estimate = np.where(eligibility(assessments), self.estimate(assessments), -np.inf)
        return np.argmax(estimate, axis=1)
