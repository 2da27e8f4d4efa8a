"""A fitted pathway model's boosters as one flat forest: a few people's estimates in one walk.

:meth:`models.pathways.PathwayEffectModel.estimate` asks 18 boosters (two
outcome models, a propensity model and a final-stage model per programme)
for their predictions; scikit-learn walks each of their ~1,000 trees in
a call of its own, so one person costs ~1,000 calls of Python overhead
(about 10 ms quiet, far more on a busy machine) for a few microseconds of
tree walking. For a recommendation every booster reads the same numbers:
the encoded assessment, with no referral at all (the estimate is for a
programme alone), so all the trees can be walked at once.

:func:`compile_forest` flattens the boosters once (when the service loads
a version; nothing is added to the saved model), and
:meth:`PathwayForest.predict` walks every tree one level per step with
array operations, whatever the number of trees. The sums are taken in
scikit-learn's order (its baseline first, then tree by tree), so the
predictions are scikit-learn's to the last bit, not only to rounding.

Only numeric splits are supported (the pathway model's boosters are fitted
on numeric matrices); :func:`compile_forest` refuses anything else, and the
caller keeps scikit-learn's own prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from scipy.special import expit
from sklearn._loss.link import IdentityLink, LogitLink
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from data.schema import PROGRAMMES
from models.pathways import PathwayEffectModel, mean_risk

Booster: TypeAlias = HistGradientBoostingClassifier | HistGradientBoostingRegressor


@dataclass(frozen=True, slots=True)
class ForestPredictions:
    """What :meth:`PathwayEffectModel.estimate` needs from its boosters, for ``n`` people.

    ``relative`` is each programme's final-stage relative reduction, shape
    ``(n, k)``; ``baseline`` the outcome models' mean risk with no referral,
    shape ``(n,)``; ``propensity`` each programme's referral propensity with
    no other referral, shape ``(n, k)``.
    """

    relative: np.ndarray
    baseline: np.ndarray
    propensity: np.ndarray


@dataclass(frozen=True, slots=True)
class PathwayForest:
    """Every tree of a pathway model's boosters in flat arrays (see the module docstring).

    Node ``i`` splits on column ``feature[i]`` of the input (the encoded
    assessment followed by zeros for the referrals) at ``threshold[i]``,
    missing values going left where ``missing_left[i]``; a leaf is its own
    child on both sides, so walking past it stays on it. Tree ``t`` starts
    at ``roots[t]``, and its leaf value goes to slot ``slots[t]`` of the
    ``(n_boosters, width)`` sum table, whose other cells hold
    ``template``: each booster's baseline in its first cell, zeros after its
    last tree (adding zero changes no sum).
    """

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int
    slots: np.ndarray
    template: np.ndarray
    n_inputs: int
    width: int
    #: Row of each booster in the sum table: the risk models first (``risk_models``).
    outcome_rows: tuple[int, ...]
    #: Per programme: its propensity booster's row, or the constant propensity.
    propensity_rows: tuple[int | float, ...]
    #: The final stages' rows; none when the plug-in is served (``plugin``).
    effect_rows: tuple[int, ...]
    #: Whether the estimate is the outcome models' contrast alone (``learner_ == "plugin"``).
    plugin: bool = False

    def predict(self, x: np.ndarray) -> ForestPredictions:
        """Return the boosters' predictions for encoded assessments ``x``, shape ``(n, features)``.

        Equal to what the boosters' own ``predict_proba`` / ``predict`` give
        on the same rows (with no referral), bit for bit.
        """
        n, k = x.shape[0], len(self.propensity_rows)
        # The plug-in also reads the outcome models with each programme alone:
        # k more readings of every person, walked with the first.
        readings = k + 1 if self.plugin else 1
        inputs = np.zeros((readings * n, self.width))
        inputs[:, : self.n_inputs] = np.tile(x, (readings, 1))
        for j in range(readings - 1):
            inputs[(j + 1) * n : (j + 2) * n, self.n_inputs + j] = 1.0
        raw = self._raw(inputs)
        outcome = [expit(raw[:, row]) for row in self.outcome_rows]
        risk = mean_risk(outcome)
        propensity = np.empty((n, k))
        for j, row in enumerate(self.propensity_rows):
            propensity[:, j] = row if isinstance(row, float) else expit(raw[:n, row])
        if self.plugin:
            plugin = risk[:n, None] - risk[n:].reshape(k, n).T
            return ForestPredictions(plugin, risk[:n], propensity)
        return ForestPredictions(raw[:, list(self.effect_rows)], risk, propensity)

    def _raw(self, inputs: np.ndarray) -> np.ndarray:
        """Return every booster's raw sum (before its link) per row of ``inputs``."""
        n = inputs.shape[0]
        flat = inputs.ravel()
        offsets = (np.arange(n) * self.width)[:, None]
        node = np.broadcast_to(self.roots, (n, self.roots.size))
        for _ in range(self.depth):
            values = flat[offsets + self.feature[node]]
            # NaN compares False, so it goes left only where its split sends missing left.
            left = (values <= self.threshold[node]) | (np.isnan(values) & self.missing_left[node])
            node = np.where(left, self.left[node], self.right[node])
        table = np.broadcast_to(self.template, (n, *self.template.shape)).copy()
        table.reshape(n, -1)[:, self.slots] = self.value[node]
        # accumulate adds left to right, as scikit-learn adds tree after tree
        # to its baseline (np.sum would pair terms differently).
        return np.add.accumulate(table, axis=2)[:, :, -1]


def compile_forest(model: PathwayEffectModel) -> PathwayForest:
    """Flatten a fitted pathway model's boosters into one :class:`PathwayForest`.

    Raises
    ------
    TypeError
        If a booster has a categorical split, predicts more than one value
        per tree, or is not a histogram gradient-boosting model.
    """
    # The outcome models, or the plug-in's booster when that is served.
    boosters: list[Booster] = list(model.risk_models())
    outcome_rows = tuple(range(len(boosters)))
    propensity_rows: list[int | float] = []
    for fitted in model.nuisance_.propensity:
        if isinstance(fitted, float):
            propensity_rows.append(fitted)
        else:
            propensity_rows.append(len(boosters))
            boosters.append(fitted)
    # A model saved before the learner existed served the DR final stage.
    plugin = getattr(model, "learner_", "dr") == "plugin"
    effect_rows = []
    for programme in () if plugin else PROGRAMMES:
        effect_rows.append(len(boosters))
        boosters.append(model.effect_models_[programme])

    n_inputs = len(model.encoder_.features_)
    # Outcome models read the features and every referral, propensity models
    # the features and the other referrals: zeros either way.
    width = n_inputs + len(PROGRAMMES)
    parts, slots, sizes = [], [], []
    longest = max(len(b._predictors) for b in boosters) + 1
    template = np.zeros((len(boosters), longest))
    for row, booster in enumerate(boosters):
        _check_supported(booster, width)
        template[row, 0] = float(np.ravel(booster._baseline_prediction)[0])
        for tree, (predictor,) in enumerate(booster._predictors, start=1):
            parts.append(predictor.nodes)
            sizes.append(len(predictor.nodes))
            slots.append(row * longest + tree)
    nodes = np.concatenate(parts)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    shift = np.repeat(offsets, sizes)
    is_leaf = nodes["is_leaf"].astype(bool)
    here = np.arange(len(nodes), dtype=np.intp)
    return PathwayForest(
        feature=np.where(is_leaf, 0, nodes["feature_idx"]).astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        left=np.where(is_leaf, here, nodes["left"].astype(np.intp) + shift),
        right=np.where(is_leaf, here, nodes["right"].astype(np.intp) + shift),
        value=nodes["value"].astype(np.float64),
        roots=offsets,
        depth=int(nodes["depth"].max()),
        slots=np.asarray(slots, dtype=np.intp),
        template=template,
        n_inputs=n_inputs,
        width=width,
        outcome_rows=outcome_rows,
        propensity_rows=tuple(propensity_rows),
        effect_rows=tuple(effect_rows),
        plugin=plugin,
    )


def _check_supported(booster: object, width: int) -> None:
    if not isinstance(booster, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        raise TypeError(f"cannot compile a {type(booster).__name__}")
    if booster.n_trees_per_iteration_ != 1:
        raise TypeError("only boosters with one tree per iteration can be compiled")
    # The walk turns raw sums into predictions as these links do: expit, identity.
    if isinstance(booster, HistGradientBoostingClassifier):
        if len(booster.classes_) != 2 or not isinstance(booster._loss.link, LogitLink):
            raise TypeError("only binary classifiers on the log-odds scale can be compiled")
    elif not isinstance(booster._loss.link, IdentityLink):
        raise TypeError("only regressors without a link function can be compiled")
    if booster.n_features_in_ > width:
        raise TypeError(f"a booster reads {booster.n_features_in_} columns, more than {width}")
    for (predictor,) in booster._predictors:
        if predictor.nodes["is_categorical"].any():
            raise TypeError("only numeric splits can be compiled")
