"""Which programme would lower this person's risk most: per-pathway effect estimates.

Historic referrals were not random: practice refers people with flagged needs
and longer records. :class:`PathwayEffectModel` corrects for that with a
doubly robust learner (Kennedy's DR-learner) for each programme: nuisances
cross-fitted on two folds (referral propensities, one outcome model given the
assessment and all referrals); a pseudo-outcome per person (the outcome
model's "no referral" minus "this programme alone", ``contrast="alone"``,
plus the inverse-propensity-weighted residual); a regression of it on the
assessment, small trees on the absolute or relative scale chosen by
out-of-fold DR loss (:mod:`models.pathway_learning`, :mod:`models.pathway_mix`).
A plug-in (S-learner) estimate is a second candidate, chosen truth-free by
out-of-fold DR policy value (``learner``, :mod:`models.pathway_stages`). The
estimate is the absolute reduction in 12-month re-offending probability from
the programme alone. Estimates whose propensity lies outside ``[overlap, 1 -
overlap]`` are outside the evidence; a programme is recommended only when its
group (by estimated effect) has a mean above zero at a family-wise level
(:mod:`models.pathway_confidence`). See ``docs/pathways.md``.

This module holds the types a saved pathway model is made of (the names
``models.contract.artifact.TRUSTED_TYPES`` trusts); what it estimates and the
recommendations read from that are :mod:`models.pathway_estimates`, the
programmes' referral columns, needs and eligibility
:mod:`models.pathway_programmes`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from data.schema import PROGRAMMES
from models.encoding import AssessmentEncoder
from models.pathway_confidence import family_wise_z
from models.pathway_estimates import PathwayEstimates, Recommendation, recommendations
from models.pathway_learning import (
    OUTCOME_LEARNING_RATE,
    PROPENSITY_LEARNING_RATE,
    PseudoOutcomes,
    doubly_robust_outcomes,
    make_effect_regressor,
    make_nuisance_booster,
    make_plugin_booster,
)
from models.pathway_mix import alone_design, alone_pseudo_outcomes
from models.pathway_policy import best_single_programme, select_learner
from models.pathway_programmes import PROGRAMME_NEEDS, REFERRAL_COLUMNS, eligible
from models.pathway_stages import (
    LEARNER_CHOICES,
    LEARNERS,
    RISK_FLOOR,
    cross_fit,
    fit_plugin,
    learn_stages,
    plugin_risks,
)

# Names of the modules this one was split into stay importable from here.
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


#: What the pseudo-outcomes contrast (:class:`PathwayEffectModel`'s ``contrast``).
CONTRASTS = ("alone", "observed", "mix")


@dataclass(frozen=True, slots=True)
class _Nuisance:
    """Outcome and propensity models fitted on one fold."""

    outcome: HistGradientBoostingClassifier
    propensity: tuple[HistGradientBoostingClassifier | float, ...]

    @classmethod
    def fit(
        cls, x: np.ndarray, referrals: np.ndarray, y: np.ndarray, owner: PathwayEffectModel
    ) -> _Nuisance:
        outcome = make_nuisance_booster(
            owner.random_state, owner.max_iter, OUTCOME_LEARNING_RATE
        ).fit(np.column_stack([x, referrals]), y)
        propensity: list[HistGradientBoostingClassifier | float] = []
        for j in range(referrals.shape[1]):
            treated = referrals[:, j]
            if treated.min() == treated.max():  # nobody (or everybody) referred
                propensity.append(float(treated[0]))
                continue
            design = np.column_stack([x, np.delete(referrals, j, axis=1)])
            booster = make_nuisance_booster(
                owner.random_state + 1, owner.max_iter, PROPENSITY_LEARNING_RATE
            )
            propensity.append(booster.fit(design, treated))
        return cls(outcome, tuple(propensity))

    def risk(self, x: np.ndarray, referrals: np.ndarray) -> np.ndarray:
        """Return the outcome model's re-offending probability under ``referrals``."""
        return self.outcome.predict_proba(np.column_stack([x, referrals]))[:, 1]

    def propensities(self, x: np.ndarray, referrals: np.ndarray) -> np.ndarray:
        out = np.empty(referrals.shape)
        for j, model in enumerate(self.propensity):
            if isinstance(model, float):
                out[:, j] = model
            else:
                design = np.column_stack([x, np.delete(referrals, j, axis=1)])
                out[:, j] = model.predict_proba(design)[:, 1]
        return out

    def pseudo_outcomes(
        self,
        x: np.ndarray,
        referrals: np.ndarray,
        y: np.ndarray,
        overlap: float,
        alone: bool = False,
    ) -> PseudoOutcomes:
        """Return DR pseudo-outcomes (reductions), untreated risks and propensities."""
        return doubly_robust_outcomes(
            self.risk, x, referrals, y, self.propensities(x, referrals), overlap, alone
        )


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
    contrast
        ``"alone"`` (default): the pseudo-outcomes' outcome-model part is a
        referral to the programme alone against none, the effect the served
        policy offers; ``"observed"``: with against without it, the other
        referrals as they were (desist before issue 17); ``"mix"``: the
        observed one with the other referrals as effect modifiers of the
        final stage, read with none (:mod:`models.pathway_mix`).
    n_bags
        Boosters, each on a random half, averaged per final stage (:mod:`models.pathway_bagging`).
    learner
        Which estimate of each programme's effect is served
        (:mod:`models.pathway_stages`): ``"auto"`` (default), whichever of
        the two below gives the larger out-of-fold DR policy value under the
        switch test (:func:`models.pathway_policy.select_learner`); ``"dr"``,
        the DR final stage; ``"plugin"``, an S-learner's risk with no
        referral minus its risk with the programme alone (``plugin_model_``).
        ``"plugin"`` needs ``contrast="alone"``; with another contrast
        ``"auto"`` is ``"dr"``.

    Attributes
    ----------
    encoder_ : AssessmentEncoder
        Encodes the features.
    learner_ : str
        The learner served, ``"dr"`` or ``"plugin"``.
    plugin_model_ : HistGradientBoostingClassifier or None
        The plug-in's booster on the assessment and the referrals, fitted on
        every person, when it is served (its risk with no referral is then
        ``baseline_risk``).
    effect_models_ : dict of str to HistGradientBoostingRegressor
        Final-stage model per programme: the absolute (or relative, by
        ``effect_scale_``, chosen by ``final_stage_loss_``) reduction from a
        referral to it, given the assessment (``"mix"``: and other referrals).
        Empty when the plug-in is served.
    outcome_models_ : tuple of HistGradientBoostingClassifier
        Each fold's outcome model; their mean risk with no referral:
        ``baseline_risk`` (unless the plug-in is served).
    nuisance_ : _Nuisance
        The first fold's nuisances: new people's overlap, test splits' scores.
    group_edges_ : dict of str to ndarray
        Effect cut points of the confidence groups per programme.
    group_low_, group_high_, group_floor_ : dict of str to ndarray
        95% interval of each group's mean pseudo-outcome; its family-wise
        one-sided lower bound, which decides recommendations.
    referral_rate_ : dict of str to float
        Share of training people referred to each programme.
    programme_value_ : dict of str to float
        Mean DR pseudo-outcome per training person of a referral of everyone
        usable (eligible, inside the evidence): the value of offering it to all.
    programme_floor_ : dict of str to float
        Family-wise (over programmes) one-sided 95% lower bound of ``programme_value_``.
    default_programme_ : int
        The best single programme (the served policy's fallback): the largest
        ``programme_value_`` of those with a floor above zero; -1 if none is.
    gate_ : bool
        Whether the served policy offers only confident personal picks.
    switch_margin_ : float
        How much a personal pick must beat the default programme's estimate
        by (infinite: the default for everyone).
    selection_ : dict of str to float
        Out-of-fold DR policy value of each candidate gate and margin (truth-free:
        fold models' estimates on the people they did not learn from), with
        ``"auto"`` of each learner's (``learner:gate/margin``); the best is served.
    """

    def __init__(
        self,
        features: tuple[str, ...] = (),
        overlap: float = 0.02,
        min_effect: float = 0.005,
        n_groups: int = 10,
        max_iter: int = 300,
        random_state: int = 0,
        contrast: str = "alone",
        n_bags: int = 1,
        learner: str = "auto",
    ) -> None:
        self.features = features
        self.overlap = overlap
        self.min_effect = min_effect
        self.n_groups = n_groups
        self.max_iter = max_iter
        self.random_state = random_state
        self.contrast = contrast
        self.n_bags = n_bags
        self.learner = learner

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
        if self.contrast not in CONTRASTS:
            raise ValueError(f"contrast must be one of {CONTRASTS}, got {self.contrast!r}")
        if self.learner not in LEARNER_CHOICES:
            raise ValueError(f"learner must be one of {LEARNER_CHOICES}, got {self.learner!r}")
        if self.learner == "plugin" and self.contrast != "alone":
            raise ValueError("learner 'plugin' needs contrast 'alone'")
        alone, mix = self.contrast == "alone", self.contrast == "mix"
        absent = [c for c in REFERRAL_COLUMNS if c not in data.columns]
        if absent:
            raise ValueError(f"pathway learning needs the referral columns {absent}")
        y = np.asarray(outcome, dtype=np.float64)
        self.encoder_ = AssessmentEncoder(self.features).fit(data)
        x = self.encoder_.transform(data)
        referrals = data[list(REFERRAL_COLUMNS)].to_numpy(dtype=np.float64)
        k = referrals.shape[1]
        folds = StratifiedKFold(2, shuffle=True, random_state=self.random_state)
        splits = list(folds.split(x, y))
        figures, nuisances = cross_fit(
            lambda xs, rs, ys: _Nuisance.fit(xs, rs, ys, self), x, referrals, y,
            data["age"].to_numpy(dtype=np.float64), splits, self.overlap, alone,
        )  # fmt: skip
        # The first fold's nuisances score new people's overlap and DR pseudo-outcomes.
        self.nuisance_ = nuisances[0]
        self.outcome_models_ = tuple(nuisance.outcome for nuisance in nuisances)
        # The plug-in estimates the effect alone: the other contrasts' pseudo-outcomes
        # judge another estimand, so "auto" is then the DR final stage.
        learners = (self.learner,) if self.learner != "auto" else LEARNERS if alone else ("dr",)
        if "plugin" in learners:
            oof = fit_plugin(self._plugin_booster, x, referrals, y, splits)
            figures = replace(figures, plugin=oof)
        z = family_wise_z(k * self.n_groups)
        settings = (self._effect_regressor, splits, mix, self.n_bags, self.n_groups, z)
        candidates = {
            name: learn_stages(name, figures, *settings, self.min_effect) for name in learners
        }
        # The groups, programme values and served rule read the pseudo-outcome
        # of the programme alone (the same for every learner but the mix's).
        pseudo = candidates[learners[0]].pseudo
        self.referral_rate_ = {p: float(referrals[:, j].mean()) for j, p in enumerate(PROGRAMMES)}
        self.programme_value_, self.programme_floor_, self.default_programme_ = (
            best_single_programme(pseudo, figures.usable)
        )
        chosen, self.gate_, self.switch_margin_, self.selection_ = select_learner(
            {name: (c.effect, c.confident) for name, c in candidates.items()},
            figures.usable,
            pseudo,
            self.default_programme_,
        )
        if len(learners) == 1:  # one learner: its rules' names as before
            self.selection_ = {name.split(":", 1)[1]: v for name, v in self.selection_.items()}
        stages = candidates[chosen]
        self.learner_, self.plugin_model_ = chosen, None
        if chosen == "plugin":  # the served plug-in learns from everyone, fitted only if served
            self.plugin_model_ = self._plugin_booster().fit(np.column_stack([x, referrals]), y)
        self.effect_models_ = stages.models
        self.effect_scale_ = stages.scale
        self.final_stage_loss_ = stages.loss
        self.group_edges_ = {p: g.edges for p, g in stages.groups.items()}
        self.group_low_ = {p: g.low for p, g in stages.groups.items()}
        self.group_high_ = {p: g.high for p, g in stages.groups.items()}
        self.group_floor_ = {p: g.floor for p, g in stages.groups.items()}
        return self

    def _effect_regressor(self) -> HistGradientBoostingRegressor:
        return make_effect_regressor(self.max_iter, self.random_state)

    def _plugin_booster(self) -> HistGradientBoostingClassifier:
        return make_plugin_booster(self.random_state + 2, self.max_iter)

    def risk_models(self) -> tuple[HistGradientBoostingClassifier, ...]:
        """Return the boosters whose mean risk is served: the plug-in's, else the outcome models."""
        check_is_fitted(self)
        # A model saved before the learner existed served the DR final stage.
        plugin = getattr(self, "plugin_model_", None)
        return self.outcome_models_ if plugin is None else (plugin,)

    def baseline_risk(self, x: np.ndarray) -> np.ndarray:
        """Return the served risk models' mean re-offending probability with no referral."""
        none = np.zeros((x.shape[0], len(PROGRAMMES)))
        return mean_risk(
            [m.predict_proba(np.column_stack([x, none]))[:, 1] for m in self.risk_models()]
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
        # A model saved before the contrast existed learnt the observed one.
        alone = getattr(self, "contrast", "observed") == "alone"
        scored = self.nuisance_.pseudo_outcomes(
            x, referrals, np.asarray(outcome, dtype=np.float64), self.overlap, alone
        )
        if getattr(self, "contrast", "observed") != "mix":
            return scored.reduction
        stages = [(self.effect_models_[p], self.effect_scale_[p]) for p in PROGRAMMES]
        untreated = np.clip(scored.untreated_risk, RISK_FLOOR, None)
        return alone_pseudo_outcomes(
            stages, x, referrals, scored.reduction, untreated, self.baseline_risk(x)
        )

    def estimate(self, assessments: pd.DataFrame) -> PathwayEstimates:
        """Estimate every programme's effect for each person, with overlap and eligibility.

        Parameters
        ----------
        assessments
            Assessments (referral columns are not needed: the estimate is for
            a referral to the programme alone, with no other referral).
        """
        return self.estimate_with_risk(assessments)[0]

    def estimate_with_risk(self, assessments: pd.DataFrame) -> tuple[PathwayEstimates, np.ndarray]:
        """Return :meth:`estimate` and each person's risk with no referral, from one pass."""
        check_is_fitted(self)
        x = self.encoder_.transform(assessments)
        propensity = self.nuisance_.propensities(x, np.zeros((x.shape[0], len(PROGRAMMES))))
        ages = assessments["age"].to_numpy(dtype=np.float64)
        if getattr(self, "plugin_model_", None) is not None:
            baseline, alone = plugin_risks(self.risk_models(), x)
            plugin = baseline[:, None] - alone
            return self.estimates_from(plugin, baseline, propensity, ages), baseline
        # A final stage of the mix contrast reads zeros for the other referrals.
        stages = [self.effect_models_[p] for p in PROGRAMMES]
        relative = np.column_stack([m.predict(alone_design(x, m.n_features_in_)) for m in stages])
        baseline = self.baseline_risk(x)
        return self.estimates_from(relative, baseline, propensity, ages), baseline

    def estimates_from(
        self,
        relative: np.ndarray,
        baseline: np.ndarray,
        propensity: np.ndarray,
        ages: np.ndarray,
    ) -> PathwayEstimates:
        """Return the estimates of :meth:`estimate` from its boosters' predictions.

        :meth:`estimate` and a faster walk of the same trees
        (:mod:`models.pathway_forest`) share this step, so both read
        groups, overlap, eligibility and the confidence rule the same way.

        Parameters
        ----------
        relative
            Each programme's final-stage relative reduction, shape ``(n, k)`` (an
            absolute one on the absolute scale or when the plug-in is served).
        baseline
            The outcome models' mean risk with no referral, shape ``(n,)``.
        propensity
            Each programme's referral propensity with no other referral, ``(n, k)``.
        ages
            The people's ages (eligibility), shape ``(n,)``.
        """
        check_is_fitted(self)
        shape = relative.shape
        effect, low, high, floor = (np.empty(shape) for _ in range(4))
        is_eligible = np.empty(shape, dtype=bool)
        # A model saved before the scale was chosen has relative stages only.
        scales = getattr(self, "effect_scale_", {})
        for j, programme in enumerate(PROGRAMMES):
            absolute = scales.get(programme, "relative") == "absolute"
            effect[:, j] = relative[:, j] * (1.0 if absolute else baseline)
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
        return PathwayEstimates(
            programmes=PROGRAMMES,
            effect=effect,
            interval_low=low,
            interval_high=high,
            propensity=propensity,
            in_overlap=in_overlap,
            eligible=is_eligible,
            recommended=recommended,
        )


def mean_risk(probabilities: list[np.ndarray]) -> np.ndarray:
    """Return the mean of the outcome models' risks (one array per model), person by person."""
    return np.mean(probabilities, axis=0)
