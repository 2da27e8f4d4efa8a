"""Subagging of the pathway model's final stage: several boosters, each on half the people, as one.

The final stage regresses doubly robust pseudo-outcomes whose noise (sd
about 1.2) is ten to fifty times the effects it looks for, so which small
trees it grows depends a lot on which people it happens to see: the
estimate's variance, not its bias, limits the served policy (issue 17,
second pass). Averaging boosters fitted on random halves of the people
(subagging, Buhlmann and Yu 2002) lowers that variance at the price of
more trees to evaluate. The average is itself a sum of trees, so
:func:`merge_boosters` returns it as one
:class:`~sklearn.ensemble.HistGradientBoostingRegressor` (every tree's leaf
values divided by the number of boosters, the baselines averaged): a saved
model holds only types it already held, and the flattened forest
(:mod:`models.pathway_forest`) walks it like any other booster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

#: Share of the people each bagged booster learns from (half: subagging).
BAG_FRACTION = 0.5


def bagged_fit(
    make: Callable[[], HistGradientBoostingRegressor],
    x: np.ndarray,
    target: np.ndarray,
    sample_weight: np.ndarray | None,
    bags: int,
) -> HistGradientBoostingRegressor:
    """Return the average of ``bags`` boosters fitted on random halves, as one booster.

    With ``bags`` 1 this is ``make().fit(x, target, sample_weight)``. The
    halves are drawn from the booster's own ``random_state``, so equal
    inputs give an equal model.
    """
    if bags < 1:
        raise ValueError(f"bags must be at least 1, got {bags}")
    if bags == 1:
        return make().fit(x, target, sample_weight=sample_weight)
    first = make()
    seed = first.random_state if isinstance(first.random_state, int) else 0
    rng = np.random.default_rng(seed)
    size = max(1, int(BAG_FRACTION * target.size))
    members = []
    for bag in range(bags):
        rows = rng.choice(target.size, size=size, replace=False)
        booster = first if bag == 0 else make()
        booster.set_params(random_state=seed + bag)
        weight = None if sample_weight is None else sample_weight[rows]
        members.append(booster.fit(x[rows], target[rows], sample_weight=weight))
    return merge_boosters(members)


def merge_boosters(members: list[HistGradientBoostingRegressor]) -> HistGradientBoostingRegressor:
    """Return one fitted booster predicting the mean of ``members``' predictions.

    The members must read the same columns with numeric splits only, one
    tree per iteration, without a link function (least-squares regressors).
    """
    merged = copy.deepcopy(members[0])
    share = 1.0 / len(members)
    trees = []
    for member in members:
        if member.n_features_in_ != merged.n_features_in_:
            raise ValueError("boosters read different columns")
        for (predictor,) in member._predictors:
            tree = copy.deepcopy(predictor)
            if tree.nodes["is_categorical"].any():
                raise ValueError("only numeric splits can be merged")
            tree.nodes["value"] *= share
            trees.append([tree])
    merged._predictors = trees
    merged._baseline_prediction = np.mean(
        [member._baseline_prediction for member in members], axis=0
    )
    return merged  # its n_iter_ reads the number of trees
