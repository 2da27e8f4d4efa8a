"""A programme's effect alone, learnt from every referral mix (issue 17's ``contrast="mix"``).

In practice people are referred to two or three programmes at once, and a
further referral may add less than its effect alone. The served policy offers
one programme alone, so the model must estimate "this programme alone
against no referral", for which only the 7-12% of a programme's referrals
with no other referral are direct evidence. The ``"alone"`` contrast reads
that effect off the outcome model and adds the inverse-propensity residual
of the *observed* contrast, which corrects the outcome model's with-and-
without-this-programme difference, not its alone-against-none difference:
the estimate is then the outcome model's own, and a booster of re-offending
shrinks what referrals do (in the harder world about half the truth).

``"mix"`` keeps the pseudo-outcome that is doubly robust, the observed
contrast (with against without the programme, the other referrals as they
were; unbiased given the assessment *and* the other referrals whenever the
propensity or the outcome model is right), and lets the final stage learn
how the other referrals modify the effect: its inputs are the assessment,
the other referrals and their number (:func:`mix_design`). It learns from
every person, and the effect alone is its reading with no other referral
(:func:`alone_design`: zeros, so the flattened forest's zero-padded inputs
read it the same way).

The truth-free choices (confidence groups, programme values, the served
rule) need a pseudo-outcome of the effect alone: the observed one moved by
the final stage's own difference between "alone" and "the mix the person
had" (:func:`alone_pseudo_outcomes`), exact for people with no other
referral and leaning on the final stage only for the shift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from models.pathway_learning import choose_final_stage, fit_final_stage


def mix_design(x: np.ndarray, referrals: np.ndarray, j: int) -> np.ndarray:
    """Return the final stage's inputs for programme ``j``: the assessment and the other referrals.

    Columns: ``x``, the other programmes' 0/1 referrals (``PROGRAMMES`` order
    without ``j``) and how many there are, so ``x.shape[1] + k`` columns in all.
    """
    others = np.delete(referrals, j, axis=1)
    return np.column_stack([x, others, others.sum(axis=1)])


def alone_design(x: np.ndarray, width: int) -> np.ndarray:
    """Return ``x`` padded with zeros to ``width`` columns: the reading with no other referral.

    A final stage of the other contrasts reads ``x`` itself
    (``width == x.shape[1]``), not a copy: every estimate reads it once per programme.
    """
    if width == x.shape[1]:
        return x
    return np.column_stack([x, np.zeros((x.shape[0], width - x.shape[1]))])


@dataclass(frozen=True, slots=True)
class ProgrammeStage:
    """One programme's final stage and the out-of-fold figures the truth-free choices read.

    ``effect`` is each person's out-of-fold estimated absolute reduction
    from the programme alone (fold models that did not learn from them);
    ``pseudo`` the DR pseudo-outcome of the programme alone (for ``mix``, the
    observed one moved by the out-of-fold final stage's alone-minus-mix
    difference); ``scale`` and ``loss`` as in
    :class:`models.pathway_learning.FinalStage`.
    """

    model: HistGradientBoostingRegressor
    scale: str
    loss: dict[str, float]
    effect: np.ndarray
    pseudo: np.ndarray


def fit_programme_stage(
    make: Callable[[], HistGradientBoostingRegressor],
    x: np.ndarray,
    referrals: np.ndarray,
    j: int,
    pseudo: np.ndarray,
    untreated: np.ndarray,
    baseline: np.ndarray,
    usable: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    mix: bool,
    bags: int = 1,
) -> ProgrammeStage:
    """Choose programme ``j``'s scale, fit its served final stage, return its out-of-fold figures.

    Parameters
    ----------
    make
        Returns an unfitted final-stage regressor.
    x, referrals
        Encoded assessments ``(n, p)`` and 0/1 referrals ``(n, k)``.
    j
        The programme's index.
    pseudo, untreated
        Programme ``j``'s cross-fitted DR pseudo-outcomes and the risk
        without it (floored above zero), shape ``(n,)``.
    baseline
        The cross-fitted risk with no referral at all, shape ``(n,)``.
    usable
        People the final stage learns from (eligible, inside the evidence).
    splits
        The cross-fitting folds.
    mix
        Whether the other referrals are the final stage's effect modifiers
        (``contrast="mix"``; ``pseudo`` and ``untreated`` then belong to the
        observed contrast).
    bags
        Boosters averaged in every final stage (:mod:`models.pathway_bagging`).
    """
    design = mix_design(x, referrals, j) if mix else x
    # Without the mix the design is the reading alone: the fold models are read once.
    reading = alone_design(x, design.shape[1]) if mix else None
    stage = choose_final_stage(make, design, pseudo, untreated, usable, splits, reading, bags)
    model = fit_final_stage(
        make, design[usable], pseudo[usable], untreated[usable], stage.scale, bags
    )
    relative = stage.scale == "relative"
    alone = stage.out_of_fold if stage.out_of_fold_alone is None else stage.out_of_fold_alone
    effect = alone * (baseline if relative else 1.0)
    if not mix:
        return ProgrammeStage(model, stage.scale, stage.loss, effect, pseudo)
    with_mix = stage.out_of_fold * (untreated if relative else 1.0)
    return ProgrammeStage(model, stage.scale, stage.loss, effect, pseudo + effect - with_mix)


def alone_pseudo_outcomes(
    stages: list[tuple[HistGradientBoostingRegressor, str]],
    x: np.ndarray,
    referrals: np.ndarray,
    pseudo: np.ndarray,
    untreated: np.ndarray,
    baseline: np.ndarray,
) -> np.ndarray:
    """Return new people's pseudo-outcomes of each programme alone, from observed ones.

    The served final stages' (``stages``: model and scale per programme)
    difference between "alone" and "the mix the person had" moves each
    observed-contrast pseudo-outcome (``pseudo``, its risks without the
    programme ``untreated``, all ``(n, k)``; ``baseline`` the risk with no
    referral, ``(n,)``).
    """
    out = np.empty(pseudo.shape)
    for j, (model, scale) in enumerate(stages):
        relative = scale == "relative"
        alone = model.predict(alone_design(x, model.n_features_in_))
        with_mix = model.predict(mix_design(x, referrals, j))
        out[:, j] = (
            pseudo[:, j]
            + alone * (baseline if relative else 1.0)
            - with_mix * (untreated[:, j] if relative else 1.0)
        )
    return out
