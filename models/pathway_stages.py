"""Each programme's effect learnt on the training people: the DR final stage or the plug-in.

:class:`models.pathways.PathwayEffectModel` has two candidate estimates of a
programme's effect alone (``learner``):

- ``"dr"``: the DR-learner's final stage, a regression of the doubly robust
  pseudo-outcomes on the assessment (:mod:`models.pathway_mix`,
  :mod:`models.pathway_learning`);
- ``"plugin"``: an S-learner, one booster of re-offending on the
  assessment and the referrals (:func:`models.pathway_learning.make_plugin_booster`),
  read as risk with no referral minus risk with the programme alone. It
  needs no final stage. Out of fold, each person's plug-in comes from the
  fold's booster that did not learn from them; the served one learns from
  every person (as the served final stage does). Its own booster, not the
  nuisances' outcome models: those are fitted on half the people with a
  fast rate for the pseudo-outcomes, and their contrast ranked programmes
  worse (issue 17's harder world, 60,000 seed 1: 0.410 of the oracle's gain
  ungated against the S-learner's 0.515); and the pseudo-outcomes that
  judge it then do not share its errors.

For each candidate this module returns the training people's *out-of-fold*
estimates (models that did not learn from them), the confidence groups cut on
them and the confidence flags: what the truth-free choice of the learner and
the served rule (:func:`models.pathway_policy.select_learner`) scores, and
what the chosen learner's estimates are then judged by, so the groups,
intervals and served policy belong to the estimate that is served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from data.schema import PROGRAMMES
from models.pathway_confidence import ConfidenceGroups, confidence_groups
from models.pathway_learning import PseudoOutcomes
from models.pathway_mix import fit_programme_stage
from models.pathway_programmes import eligible

#: Untreated risks are floored here before dividing by them, so that a
#: near-zero prediction cannot blow up a relative pseudo-outcome.
RISK_FLOOR = 0.01

#: The candidate estimates of a programme's effect (see the module docstring).
LEARNERS = ("dr", "plugin")
#: What the model's ``learner`` may be: a candidate, or ``"auto"``, chosen truth-free.
LEARNER_CHOICES = ("auto", *LEARNERS)


@dataclass(frozen=True, slots=True)
class Stages:
    """One learner's effects of every programme on the training people.

    ``models``, ``scale`` and ``loss`` are the DR final stages per programme,
    their scale and out-of-fold DR loss (the plug-in has no model; its scale
    is absolute and its loss is under ``"plugin"``); ``groups`` the confidence
    groups per programme; ``effect`` and ``confident`` the out-of-fold
    estimates and confidence flags, ``pseudo`` the pseudo-outcomes of each
    programme alone, all ``(n, k)``.
    """

    learner: str
    models: dict[str, HistGradientBoostingRegressor]
    scale: dict[str, str]
    loss: dict[str, dict[str, float]]
    groups: dict[str, ConfidenceGroups]
    effect: np.ndarray
    confident: np.ndarray
    pseudo: np.ndarray


@dataclass(frozen=True, slots=True)
class TrainingFigures:
    """The cross-fitted figures of the training people every learner reads, ``(n, k)`` unless said.

    ``pseudo`` the DR pseudo-outcomes; ``untreated`` the risk without the
    programme (floored above zero); ``baseline`` the risk with no referral,
    ``(n,)``; ``plugin`` the out-of-fold plug-in (:func:`fit_plugin`;
    ``None`` when not asked for); ``usable`` the people each programme's estimate is
    learnt from and judged on (eligible, inside the evidence).
    """

    x: np.ndarray
    referrals: np.ndarray
    pseudo: np.ndarray
    untreated: np.ndarray
    baseline: np.ndarray
    plugin: np.ndarray | None
    usable: np.ndarray


class FoldNuisance(Protocol):
    """What cross-fitting needs of one fold's nuisances (``models.pathways._Nuisance``)."""

    @property
    def outcome(self) -> HistGradientBoostingClassifier:
        """The fold's outcome model."""

    def risk(self, x: np.ndarray, referrals: np.ndarray) -> np.ndarray:
        """Return the outcome model's re-offending probability under ``referrals``."""

    def pseudo_outcomes(
        self, x: np.ndarray, referrals: np.ndarray, y: np.ndarray, overlap: float, alone: bool
    ) -> PseudoOutcomes:
        """Return the DR pseudo-outcomes of people the fold did not learn from."""


Nuisance = TypeVar("Nuisance", bound=FoldNuisance)


def cross_fit(
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray], Nuisance],
    x: np.ndarray,
    referrals: np.ndarray,
    y: np.ndarray,
    ages: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    overlap: float,
    alone: bool,
) -> tuple[TrainingFigures, list[Nuisance]]:
    """Return the training people's cross-fitted figures and each fold's nuisances.

    ``fit(x, referrals, y)`` fits one fold's nuisances; each person's
    propensities, outcome predictions and pseudo-outcomes come from the
    fold that did not learn from them. ``usable``: eligible by ``ages`` and
    with a propensity inside ``[overlap, 1 - overlap]``.
    """
    n, k = referrals.shape
    pseudo, untreated, propensity = (np.empty((n, k)) for _ in range(3))
    baseline = np.empty(n)
    nuisances = []
    for train, held in splits:
        nuisance = fit(x[train], referrals[train], y[train])
        scored = nuisance.pseudo_outcomes(x[held], referrals[held], y[held], overlap, alone)
        pseudo[held], untreated[held] = scored.reduction, scored.untreated_risk
        propensity[held] = scored.propensity
        baseline[held] = nuisance.risk(x[held], np.zeros((held.size, k)))
        nuisances.append(nuisance)
    usable = np.column_stack([eligible(p, ages) for p in PROGRAMMES])
    usable &= (propensity >= overlap) & (propensity <= 1 - overlap)
    floored = np.clip(untreated, RISK_FLOOR, None)
    figures = TrainingFigures(x, referrals, pseudo, floored, baseline, None, usable)
    return figures, nuisances


def learn_stages(
    learner: str,
    figures: TrainingFigures,
    make: Callable[[], HistGradientBoostingRegressor],
    splits: list[tuple[np.ndarray, np.ndarray]],
    mix: bool,
    bags: int,
    n_groups: int,
    z: float,
    min_effect: float,
) -> Stages:
    """Return ``learner``'s out-of-fold effects, confidence groups and flags of every programme.

    Parameters
    ----------
    learner
        ``"dr"`` or ``"plugin"`` (:data:`LEARNERS`; the plug-in reads
        ``figures.plugin``).
    figures
        The training people's cross-fitted figures.
    make, splits, mix, bags
        The final stage's regressor, folds, contrast and bags
        (:func:`models.pathway_mix.fit_programme_stage`).
    n_groups, z, min_effect
        Confidence groups per programme, their family-wise critical value,
        and the smallest estimate recommended.
    """
    n, k = figures.pseudo.shape
    models: dict[str, HistGradientBoostingRegressor] = {}
    scale: dict[str, str] = {}
    loss: dict[str, dict[str, float]] = {}
    groups: dict[str, ConfidenceGroups] = {}
    effect = np.zeros((n, k))
    confident = np.zeros((n, k), dtype=bool)
    pseudo = figures.pseudo.copy()
    for j, programme in enumerate(PROGRAMMES):
        usable = figures.usable[:, j]
        if learner == "plugin":
            if figures.plugin is None:
                raise ValueError("the plug-in learner needs the out-of-fold plug-in")
            effect[:, j] = figures.plugin[:, j]
            scale[programme] = "absolute"
            loss[programme] = {}
        else:
            stage = fit_programme_stage(
                make, figures.x, figures.referrals, j, figures.pseudo[:, j],
                figures.untreated[:, j], figures.baseline, usable, splits, mix, bags,
            )  # fmt: skip
            models[programme], scale[programme] = stage.model, stage.scale
            loss[programme] = dict(stage.loss)
            effect[:, j], pseudo[:, j] = stage.effect, stage.pseudo
        if figures.plugin is not None:
            # Kennedy's DR loss of the plug-in, beside the final stage's, for the record.
            squared = (pseudo[usable, j] - figures.plugin[usable, j]) ** 2
            loss[programme]["plugin"] = float(squared.mean())
        # Each person's group comes from an estimate that did not learn from
        # them, so a group's interval is not flattered by fitting its own noise.
        found = confidence_groups(effect[usable, j], pseudo[usable, j], n_groups, z)
        groups[programme] = found
        group = np.searchsorted(found.edges, effect[:, j], side="right")
        confident[:, j] = (
            usable & (effect[:, j] > min_effect) & (np.nan_to_num(found.floor[group], nan=-1.0) > 0)
        )
    return Stages(learner, models, scale, loss, groups, effect, confident, pseudo)


def plugin_risks(
    outcome_models: tuple[HistGradientBoostingClassifier, ...], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the outcome models' mean risk with no referral ``(n,)`` and with each programme alone.

    The plug-in estimate of programme ``j`` is the first minus column ``j``
    of the second, ``(n, k)``. One prediction per model of every reading
    stacked (no referral, then each programme alone), since a call's
    overhead, not its rows, is most of its cost for a few people; a row's
    prediction does not depend on the rows beside it.
    """
    n, k = x.shape[0], len(PROGRAMMES)
    readings = np.zeros(((k + 1) * n, k))
    for j in range(k):
        readings[(j + 1) * n : (j + 2) * n, j] = 1.0
    design = np.column_stack([np.tile(x, (k + 1, 1)), readings])
    risk = np.mean([m.predict_proba(design)[:, 1] for m in outcome_models], axis=0)
    return risk[:n], risk[n:].reshape(k, n).T


def fit_plugin(
    make: Callable[[], HistGradientBoostingClassifier],
    x: np.ndarray,
    referrals: np.ndarray,
    y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Return the out-of-fold plug-in of every programme, ``(n, k)``.

    Each fold's booster learns re-offending from the assessment and the
    referrals of the people outside it and reads its own people with no
    referral and with each programme alone. The served booster, on everyone,
    is fitted by the model only when the plug-in is chosen.
    """
    design = np.column_stack([x, referrals])
    out = np.empty(referrals.shape)
    for train, held in splits:
        booster = make().fit(design[train], y[train])
        baseline, alone = plugin_risks((booster,), x[held])
        out[held] = baseline[:, None] - alone
    return out
