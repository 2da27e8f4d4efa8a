"""Which programme would lower this person's risk most: per-pathway effect estimates.

Historic referrals were not random: practice refers people with flagged needs
and longer records. :class:`PathwayEffectModel` corrects for that with a
doubly robust learner (Kennedy's DR-learner) for each programme:

1. Nuisances, cross-fitted on two folds: the referral propensity of the
   programme given the assessment and the person's other referrals, and one
   outcome model of re-offending given the assessment and all referrals.
2. Pseudo-outcome per person: the outcome model's difference between
   "referred" and "not referred" plus the inverse-propensity-weighted
   residual. Its mean over any group estimates that group's average effect
   even when one of the two nuisance models is wrong.
3. A regression of the pseudo-outcome on the assessment on the relative
   scale: pseudo-outcome ~ untreated risk x relative reduction(assessment),
   where the untreated risk is the outcome model's, with the person's other
   referrals as they were. Fitted on everyone usable, small trees against
   the pseudo-outcomes' noise. The estimated absolute reduction in 12-month
   re-offending probability from a referral to this programme alone is the
   relative reduction times the risk with no referral at all: when
   programmes multiply, the relative reduction does not depend on the other
   referrals, so "alone" needs no extrapolation.

Overlap: people whose estimated propensity lies outside ``[overlap, 1 -
overlap]`` were (almost) never, or (almost) always, referred when they looked
like this; the model does not extrapolate to them and marks those estimates
as outside the evidence.

Confidence: people are grouped by their estimated effect (deciles, per
programme, assigned by the fold model that did not learn from them); the
mean pseudo-outcome of the group and its 95% interval is the confidence note
of everyone in it. A programme is recommended only when the estimate is
above ``min_effect`` and the group's mean is above zero at a family-wise
level over every group of every programme (one-sided, Bonferroni: 5% / (8 x
groups)), so that a world in which nothing works yields (almost) no
recommendation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from data.schema import PRINCES_TRUST, PRINCES_TRUST_AGE_RANGE, PROGRAMMES
from models.compiled_trees import COMPILED_ROWS, compiled_predictions
from models.encoding import AssessmentEncoder
from models.pathway_estimates import (
    PROGRAMME_NEEDS,
    PathwayEstimates,
    Recommendation,
    recommendations,
)
from models.pathway_nuisance import Nuisance
from models.pathway_policy import served_programmes

__all__ = [
    "PROGRAMME_NEEDS",
    "REFERRAL_COLUMNS",
    "PathwayEffectModel",
    "PathwayEstimates",
    "Recommendation",
    "eligible",
    "family_wise_z",
    "recommendations",
]

REFERRAL_COLUMNS: tuple[str, ...] = tuple(f"referred_{p}" for p in PROGRAMMES)

#: Family-wise error rate of the "above zero" tests behind recommendations.
FAMILY_WISE_ALPHA = 0.05


def family_wise_z(n_tests: int) -> float:
    """Return the one-sided Bonferroni critical value for ``n_tests`` tests at 5%.

    Every confidence group of every programme is one test: with ten groups
    and eight programmes, 5% / 8 per test (the earlier level) would let a
    world with no effect at all yield a recommendation about a third of the
    time.
    """
    return float(norm.ppf(1 - FAMILY_WISE_ALPHA / n_tests))


def eligible(programme: str, ages: np.ndarray) -> np.ndarray:
    """Return who may be referred to ``programme`` (Prince's Trust: ages 16-25 only)."""
    if programme != PRINCES_TRUST:
        return np.ones(ages.shape, dtype=bool)
    low, high = PRINCES_TRUST_AGE_RANGE
    return (ages >= low) & (ages <= high)


#: Final stage (see ``PathwayEffectModel._effect_regressor``).
EFFECT_LEARNING_RATE = 0.05
#: Untreated risks are floored here before dividing by them, so that a
#: near-zero prediction cannot blow up a relative pseudo-outcome.
RISK_FLOOR = 0.01
#: Final-stage leaf sizes tried (largest first; one is chosen per fit by
#: the out-of-fold doubly robust value); a leaf size needs a quarter of the
#: smallest fold's usable people.
LEAF_CANDIDATES: tuple[int, ...] = (1000, 300)
#: How much a personal pick must beat the default programme by (absolute
#: reduction); infinity means "everyone gets the default programme".
#: Confidence-group counts tried besides ``n_groups`` (1: one test per
#: programme, of its average effect); every count keeps the family-wise level.
GROUP_CANDIDATES: tuple[int, ...] = (4, 1)
MARGIN_CANDIDATES: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.04, float("inf"))


class PathwayEffectModel(BaseEstimator):
    """Doubly robust per-programme effect model (see the module docstring).

    Parameters
    ----------
    features
        Assessment fields the nuisance and effect models use.
    overlap
        Propensities below this, or above one minus this, are outside the
        evidence.
    min_effect
        Smallest estimated absolute reduction worth recommending.
    n_groups
        Groups (by estimated effect) used for the confidence intervals.
    max_iter
        Boosting rounds of every internal model (early stopping applies).
    random_state
        Seed of the folds and the boosters.

    Attributes
    ----------
    encoder_ : AssessmentEncoder
        Encodes the features.
    effect_models_ : dict of str to HistGradientBoostingRegressor
        Final-stage model per programme: the relative reduction in
        re-offending from a referral to it, given the assessment.
    outcome_models_ : tuple of HistGradientBoostingClassifier
        Each fold's outcome model; their mean risk with no referral turns
        relative reductions into absolute ones.
    nuisance_ : Nuisance
        The first fold's outcome and propensity models, kept to check the
        overlap of new people and to score test splits.
    group_edges_ : dict of str to ndarray
        Effect cut points of the confidence groups per programme.
    group_low_, group_high_ : dict of str to ndarray
        95% interval of the mean pseudo-outcome in each group.
    group_floor_ : dict of str to ndarray
        Family-wise one-sided lower bound used to decide recommendations.
    referral_rate_ : dict of str to float
        Share of training people referred to each programme.
    fold_effect_models_ : dict of str to tuple of HistGradientBoostingRegressor
        The final stage fitted on each fold; their disagreement gives the
        per-person interval.
    average_effect_ : ndarray
        Mean training pseudo-outcome per programme (eligible, in overlap).
    programme_confident_ : ndarray of bool
        Whether each programme's average effect is above zero at a
        family-wise level over the programmes.
    default_programme_ : int
        Programme with the largest average effect that is above zero at a
        family-wise level over the programmes; -1 if none is.
    final_stage_, min_samples_leaf_, groups_, switch_margin_ : str, int, int, float
        Final-stage target (``"dr"``: DR pseudo-outcomes; ``"r"``: the
        R-learner's residual loss), leaf size, number of confidence groups
        and switch margin, chosen by
        the out-of-fold doubly robust value of the served policy (no
        ground truth).
    selection_ : dict of str to float
        That value for every candidate, ``"<stage>/<leaf>/<groups>/<margin>"``.
    """

    def __init__(
        self,
        features: tuple[str, ...] = (),
        overlap: float = 0.02,
        min_effect: float = 0.005,
        n_groups: int = 10,
        max_iter: int = 300,
        random_state: int = 0,
    ) -> None:
        self.features = features
        self.overlap = overlap
        self.min_effect = min_effect
        self.n_groups = n_groups
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, data: pd.DataFrame, outcome: np.ndarray) -> PathwayEffectModel:
        """Learn per-programme effects from historic referrals and outcomes.

        Parameters
        ----------
        data
            Assessments with the ``referred_<programme>`` columns.
        outcome
            1 if the person re-offended within 12 months, else 0.
        """
        if not 0 < self.overlap < 0.5:
            raise ValueError(f"overlap must be in (0, 0.5), got {self.overlap}")
        absent = [c for c in REFERRAL_COLUMNS if c not in data.columns]
        if absent:
            raise ValueError(f"pathway learning needs the referral columns {absent}")
        y = np.asarray(outcome, dtype=np.float64)
        self.encoder_ = AssessmentEncoder(self.features).fit(data)
        x = self.encoder_.transform(data)
        referrals = data[list(REFERRAL_COLUMNS)].to_numpy(dtype=np.float64)
        n, k = referrals.shape

        # Cross-fitted nuisances: each person's propensities and outcome
        # predictions come from models that never saw them.
        folds = StratifiedKFold(2, shuffle=True, random_state=self.random_state)
        splits = list(folds.split(x, y))
        pseudo_all = np.empty((n, k))
        r_target, r_weight = np.empty((n, k)), np.empty((n, k))
        untreated_all = np.empty((n, k))
        propensity = np.empty((n, k))
        baseline = np.empty(n)
        outcome_models = []
        for fold, (train, held) in enumerate(splits):
            nuisance = Nuisance.fit(x[train], referrals[train], y[train], self)
            scored = nuisance.pseudo_outcomes(x[held], referrals[held], y[held], self.overlap)
            pseudo_all[held] = scored.reduction
            r_target[held], r_weight[held] = scored.r_target, scored.r_weight
            untreated_all[held] = scored.untreated_risk
            propensity[held] = scored.propensity
            baseline[held] = nuisance.risk(x[held], np.zeros((held.size, k)))
            outcome_models.append(nuisance.outcome)
            if fold == 0:
                # Kept to score new people's overlap and DR pseudo-outcomes.
                self.nuisance_ = nuisance
        self.outcome_models_ = tuple(outcome_models)

        ages = data["age"].to_numpy(dtype=np.float64)
        allowed = np.column_stack([eligible(p, ages) for p in PROGRAMMES])
        usable = allowed & (propensity >= self.overlap) & (propensity <= 1 - self.overlap)
        # Relative scale: pseudo ~ untreated risk * relative(x), by least
        # squares on the absolute scale (target divided by the risk, weight
        # its square). The relative reduction does not depend on the other
        # referrals when effects multiply, so reading it at "no other
        # referral" needs no extrapolation.
        untreated = np.clip(untreated_all, RISK_FLOOR, None)
        targets = {
            "dr": (pseudo_all / untreated, untreated**2),
            "r": (r_target / untreated, r_weight * untreated**2),
        }
        self.referral_rate_ = {p: float(referrals[:, j].mean()) for j, p in enumerate(PROGRAMMES)}
        self._fit_default(pseudo_all, usable)

        # Truth-free selection: each candidate leaf size's final stage is
        # fitted on one fold and read on the other; the served policy's
        # doubly robust value on those out-of-fold estimates picks the leaf
        # size and the switch margin (the largest within one standard error
        # of the best, so that noise falls back to the default programme).
        fold_size = min(int(usable[train].sum(axis=0).min()) for train, _ in splits)
        leaves = [leaf for leaf in LEAF_CANDIDATES if 4 * leaf <= fold_size] or [
            LEAF_CANDIDATES[-1]
        ]
        Folds = dict[str, tuple[HistGradientBoostingRegressor, ...]]
        fitted: dict[tuple[str, int], tuple[np.ndarray, Folds]] = {}
        self.selection_: dict[str, float] = {}
        gains: dict[tuple[str, int, int, float], np.ndarray] = {}
        for stage, (relative, weight) in targets.items():
            for leaf in leaves:
                oof = np.full((n, k), np.nan)
                folds_of: Folds = {}
                for j, programme in enumerate(PROGRAMMES):
                    models = []
                    for train, held in splits:
                        rows = train[usable[train, j]]
                        fold_model = self._effect_regressor(leaf).fit(
                            x[rows], relative[rows, j], sample_weight=weight[rows, j]
                        )
                        oof[held, j] = fold_model.predict(x[held]) * baseline[held]
                        models.append(fold_model)
                    folds_of[programme] = tuple(models)
                fitted[stage, leaf] = (oof, folds_of)
                for count in sorted({self.n_groups, *GROUP_CANDIDATES}, reverse=True):
                    confident = self._confident(oof, pseudo_all, usable, count)
                    for margin in MARGIN_CANDIDATES:
                        choice = served_programmes(
                            oof, confident, usable, self.default_programme_, margin
                        )
                        gain = np.where(
                            choice >= 0, pseudo_all[np.arange(n), np.maximum(choice, 0)], 0.0
                        )
                        gains[stage, leaf, count, margin] = gain
                        self.selection_[f"{stage}/{leaf}/{count}/{margin}"] = float(gain.mean())
        # The best candidate, or the most conservative one (largest margin,
        # then most confidence groups, largest leaf, DR before R) whose value
        # is within one paired standard error of it.
        best = max(gains, key=lambda c: float(gains[c].mean()))

        def near(c: tuple[str, int, int, float]) -> bool:
            gap = gains[best] - gains[c]
            return float(gap.mean()) <= float(gap.std(ddof=1) / np.sqrt(n))

        chosen = max(filter(near, gains), key=lambda c: (c[3], c[2], c[1], c[0] == "dr"))
        self.final_stage_, self.min_samples_leaf_, self.groups_, self.switch_margin_ = chosen
        oof, self.fold_effect_models_ = fitted[self.final_stage_, self.min_samples_leaf_]
        relative, weight = targets[self.final_stage_]

        self.effect_models_: dict[str, HistGradientBoostingRegressor] = {}
        self.group_edges_: dict[str, np.ndarray] = {}
        self.group_low_: dict[str, np.ndarray] = {}
        self.group_high_: dict[str, np.ndarray] = {}
        self.group_floor_: dict[str, np.ndarray] = {}
        for j, programme in enumerate(PROGRAMMES):
            rows = usable[:, j]
            # The served model learns from every usable person; each
            # person's confidence group comes from a fold model that did not
            # learn from them, so a group's interval is not flattered by the
            # model fitting its own noise.
            self.effect_models_[programme] = self._effect_regressor(self.min_samples_leaf_).fit(
                x[rows], relative[rows, j], sample_weight=weight[rows, j]
            )
            edges, low, high, floor = self._groups(oof[:, j], pseudo_all[:, j], rows, self.groups_)
            self.group_edges_[programme] = edges
            self.group_low_[programme] = low
            self.group_high_[programme] = high
            self.group_floor_[programme] = floor
        return self

    def _confident(
        self, oof: np.ndarray, pseudo: np.ndarray, usable: np.ndarray, count: int
    ) -> np.ndarray:
        """Return which out-of-fold estimates pass the confidence rule."""
        k = oof.shape[1]
        groups = [self._groups(oof[:, j], pseudo[:, j], usable[:, j], count) for j in range(k)]
        floor = np.column_stack(
            [g[3][np.searchsorted(g[0], oof[:, j], side="right")] for j, g in enumerate(groups)]
        )
        return usable & (oof > self.min_effect) & (np.nan_to_num(floor, nan=-1.0) > 0)

    def _fit_default(self, pseudo: np.ndarray, usable: np.ndarray) -> None:
        """Set the average effects and the default programme (best single, if clearly positive)."""
        k = pseudo.shape[1]
        z = family_wise_z(k)
        means, floors = np.zeros(k), np.full(k, -1.0)
        for j in range(k):
            values = pseudo[usable[:, j], j]
            if values.size >= 30:
                means[j] = values.mean()
                floors[j] = means[j] - z * values.std(ddof=1) / np.sqrt(values.size)
        self.average_effect_ = means
        positive = floors > 0
        self.programme_confident_ = positive
        self.default_programme_ = (
            int(np.argmax(np.where(positive, means, -np.inf))) if positive.any() else -1
        )

    def _groups(
        self, estimate: np.ndarray, pseudo: np.ndarray, usable: np.ndarray, count: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return ``count`` groups' effect cut points, 95% intervals and family-wise floors."""
        z = family_wise_z(len(PROGRAMMES) * count)
        edges = np.unique(np.quantile(estimate[usable], np.linspace(0, 1, count + 1)[1:-1]))
        group = np.searchsorted(edges, estimate[usable], side="right")
        low, high, floor = (np.full(edges.size + 1, np.nan) for _ in range(3))
        for g in range(edges.size + 1):
            values = pseudo[usable][group == g]
            if values.size >= 30:
                error = values.std(ddof=1) / np.sqrt(values.size)
                low[g], high[g] = values.mean() - 1.96 * error, values.mean() + 1.96 * error
                floor[g] = values.mean() - z * error
        return edges, low, high, floor

    def _effect_regressor(self, min_samples_leaf: int) -> HistGradientBoostingRegressor:
        # DR pseudo-outcomes are noisy (sd about 1 against effects of
        # 0.02-0.13): small trees, large leaves, a slow rate and a patient
        # stop keep the final stage from fitting noise. Chosen on a
        # validation cohort (seed 11), not on the benchmark's.
        return HistGradientBoostingRegressor(
            learning_rate=EFFECT_LEARNING_RATE,
            max_iter=self.max_iter,
            max_leaf_nodes=3,
            min_samples_leaf=min_samples_leaf,
            early_stopping=True,
            n_iter_no_change=20,
            random_state=self.random_state,
        )

    def _predictions(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Return propensities, risk with no referral, relative effects and fold effects."""
        k = len(PROGRAMMES)
        propensity = self.nuisance_.propensities(x, np.zeros((x.shape[0], k)))
        relative = np.column_stack([self.effect_models_[p].predict(x) for p in PROGRAMMES])
        folds = [
            np.column_stack([m.predict(x) for m in self.fold_effect_models_[p]]) for p in PROGRAMMES
        ]
        return propensity, self.baseline_risk(x), relative, np.stack(folds, axis=1)

    def baseline_risk(self, x: np.ndarray) -> np.ndarray:
        """Return the outcome models' mean re-offending probability with no referral."""
        check_is_fitted(self)
        none = np.zeros((x.shape[0], len(PROGRAMMES)))
        return np.mean(
            [m.predict_proba(np.column_stack([x, none]))[:, 1] for m in self.outcome_models_],
            axis=0,
        )

    def predict(self, assessments: pd.DataFrame) -> np.ndarray:
        """Return the estimated reduction of each programme alone, shape ``(n, k)``."""
        return self.estimate(assessments).effect

    def pseudo_outcomes(self, data: pd.DataFrame, outcome: np.ndarray) -> np.ndarray:
        """Return DR pseudo-outcomes of new people (with referrals and outcomes).

        Their mean over any group estimates the group's average reduction
        from each programme; used to evaluate policies on a test split.
        """
        check_is_fitted(self)
        x = self.encoder_.transform(data)
        referrals = data[list(REFERRAL_COLUMNS)].to_numpy(dtype=np.float64)
        scored = self.nuisance_.pseudo_outcomes(
            x, referrals, np.asarray(outcome, dtype=np.float64), self.overlap
        )
        return scored.reduction

    def estimate(self, assessments: pd.DataFrame) -> PathwayEstimates:
        """Estimate every programme's effect for each person, with overlap and eligibility.

        Parameters
        ----------
        assessments
            Assessments (referral columns are not needed: the estimate is for
            a referral to the programme alone, with no other referral).
        """
        check_is_fitted(self)
        x = self.encoder_.transform(assessments)
        n, k = x.shape[0], len(PROGRAMMES)
        ages = assessments["age"].to_numpy(dtype=np.float64)
        shape = (n, k)
        low, high, floor = (np.empty(shape) for _ in range(3))
        is_eligible = np.empty(shape, dtype=bool)
        if n <= COMPILED_ROWS:  # a served request: compiled trees, same figures
            propensity, baseline, relative, folds = compiled_predictions(self, x)
        else:
            propensity, baseline, relative, folds = self._predictions(x)
        effect = relative * baseline[:, None]
        spread = np.abs(folds[:, :, 0] - folds[:, :, 1]) * baseline[:, None]
        for j, programme in enumerate(PROGRAMMES):
            group = np.searchsorted(self.group_edges_[programme], effect[:, j], side="right")
            low[:, j] = self.group_low_[programme][group]
            high[:, j] = self.group_high_[programme][group]
            floor[:, j] = self.group_floor_[programme][group]
            is_eligible[:, j] = eligible(programme, ages)
        in_overlap = (propensity >= self.overlap) & (propensity <= 1 - self.overlap)
        recommended = (
            is_eligible
            & in_overlap
            & (effect > self.min_effect)
            & (np.nan_to_num(floor, nan=-1.0) > 0)
        )
        # Per person: the group mean's standard error plus the estimate's
        # own noise, read from the two fold models' disagreement (the
        # served model, fitted on both halves, has about half a fold
        # model's variance: sd about |difference| / 2).
        group_error = np.nan_to_num((high - low) / (2 * 1.96), nan=0.0)
        half = 1.96 * np.sqrt(group_error**2 + (spread / 2) ** 2)
        return PathwayEstimates(
            programmes=PROGRAMMES,
            effect=effect,
            interval_low=low,
            interval_high=high,
            propensity=propensity,
            in_overlap=in_overlap,
            eligible=is_eligible,
            recommended=recommended,
            risk_without=baseline,
            person_low=effect - half,
            person_high=effect + half,
            default_programme=self.default_programme_,
            switch_margin=self.switch_margin_,
        )
