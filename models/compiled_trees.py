"""Fitted histogram-gradient-boosting models as flat arrays, for one person at a time.

scikit-learn's ``predict`` costs about a millisecond per call whatever the
number of rows (validation, thread pools); a served recommendation calls
some 34 boosters for one person. :class:`CompiledBooster` reads a fitted
booster's trees once into padded arrays and walks all trees together with
numpy, which answers a handful of rows in tens of microseconds. It gives the
same raw scores as scikit-learn (a test checks it) for numerical features;
a booster with categorical features is refused.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from data.schema import PROGRAMMES

if TYPE_CHECKING:
    from models.pathways import PathwayEffectModel

#: Requests of at most this many people use the compiled trees.
COMPILED_ROWS = 64


class CompiledBooster:
    """The trees of one fitted binary classifier or squared-error regressor.

    Parameters
    ----------
    booster
        A fitted ``HistGradientBoostingClassifier`` (binary) or
        ``HistGradientBoostingRegressor`` (squared error).
    """

    def __init__(
        self, booster: HistGradientBoostingClassifier | HistGradientBoostingRegressor
    ) -> None:
        if getattr(booster, "is_categorical_", None) is not None:
            raise ValueError("compiled boosters support numerical features only")
        trees = [iteration[0].nodes for iteration in booster._predictors]
        size = max(len(nodes) for nodes in trees)
        shape = (len(trees), size)
        self.feature = np.zeros(shape, dtype=np.intp)
        self.threshold = np.zeros(shape)
        self.left = np.zeros(shape, dtype=np.intp)
        self.right = np.zeros(shape, dtype=np.intp)
        self.leaf = np.ones(shape, dtype=bool)
        self.missing_left = np.zeros(shape, dtype=bool)
        self.value = np.zeros(shape)
        for t, nodes in enumerate(trees):
            m = len(nodes)
            self.feature[t, :m] = nodes["feature_idx"]
            self.threshold[t, :m] = nodes["num_threshold"]
            self.left[t, :m] = nodes["left"]
            self.right[t, :m] = nodes["right"]
            self.leaf[t, :m] = nodes["is_leaf"].astype(bool)
            self.missing_left[t, :m] = nodes["missing_go_to_left"].astype(bool)
            self.value[t, :m] = nodes["value"]
        self.baseline = float(np.ravel(booster._baseline_prediction)[0])
        self.classifier = isinstance(booster, HistGradientBoostingClassifier)
        self._trees = np.arange(len(trees))

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Return the raw score (log-odds or regression value) of each row of ``x``."""
        n = x.shape[0]
        trees = np.broadcast_to(self._trees, (n, self._trees.size))
        rows = np.arange(n)[:, None]
        node = np.zeros(trees.shape, dtype=np.intp)
        while True:
            at_leaf = self.leaf[trees, node]
            if at_leaf.all():
                break
            value = x[rows, self.feature[trees, node]]
            go_left = np.where(
                np.isnan(value),
                self.missing_left[trees, node],
                value <= self.threshold[trees, node],
            )
            step = np.where(go_left, self.left[trees, node], self.right[trees, node])
            node = np.where(at_leaf, node, step)
        return self.baseline + self.value[trees, node].sum(axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return the probability of class 1 (classifier) or the prediction (regressor)."""
        score = self.raw(x)
        return expit(score) if self.classifier else score


class CompiledEnsemble:
    """Several compiled boosters walked together: one pass answers all of them.

    Every booster must read the same input columns (a booster may use fewer
    than there are: a model fitted on ``x`` reads the first columns of
    ``[x, zeros]``).
    """

    def __init__(self, boosters: list[CompiledBooster]) -> None:
        size = max(b.feature.shape[1] for b in boosters)

        def stack(name: str, fill: float | bool) -> np.ndarray:
            parts = []
            for b in boosters:
                part = getattr(b, name)
                pad = np.full((part.shape[0], size - part.shape[1]), fill, dtype=part.dtype)
                parts.append(np.hstack([part, pad]))
            return np.vstack(parts)

        self.single = CompiledBooster.__new__(CompiledBooster)
        for name, fill in (
            ("feature", 0),
            ("threshold", 0.0),
            ("left", 0),
            ("right", 0),
            ("leaf", True),
            ("missing_left", False),
            ("value", 0.0),
        ):
            setattr(self.single, name, stack(name, fill))
        self.single.baseline = 0.0
        self.single.classifier = False
        self.single._trees = np.arange(self.single.feature.shape[0])
        counts = [b.feature.shape[0] for b in boosters]
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
        self.baselines = np.array([b.baseline for b in boosters])
        self.classifier = np.array([b.classifier for b in boosters])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return every booster's prediction for each row, shape ``(n, n_boosters)``."""
        n = x.shape[0]
        trees = np.broadcast_to(self.single._trees, (n, self.single._trees.size))
        rows = np.arange(n)[:, None]
        s = self.single
        node = np.zeros(trees.shape, dtype=np.intp)
        while True:
            at_leaf = s.leaf[trees, node]
            if at_leaf.all():
                break
            value = x[rows, s.feature[trees, node]]
            go_left = np.where(
                np.isnan(value), s.missing_left[trees, node], value <= s.threshold[trees, node]
            )
            node = np.where(
                at_leaf, node, np.where(go_left, s.left[trees, node], s.right[trees, node])
            )
        leaves = s.value[trees, node]
        raw = np.add.reduceat(leaves, self.starts, axis=1) + self.baselines
        return np.where(self.classifier, expit(raw), raw)


_COMPILED: weakref.WeakKeyDictionary[Any, tuple[CompiledEnsemble, dict[int, float]]] = (
    weakref.WeakKeyDictionary()
)


def _compiled(model: PathwayEffectModel) -> tuple[CompiledEnsemble, dict[int, float]]:
    """Return (compiling once per fitted model) the ensemble a served request walks.

    Order: the non-constant propensity models, the outcome models, the
    final stage per programme, then each programme's two fold models.
    """
    if model not in _COMPILED:
        propensity = model.nuisance_.propensity
        boosters = [m for m in propensity if not isinstance(m, float)]
        boosters += list(model.outcome_models_)
        boosters += [model.effect_models_[p] for p in PROGRAMMES]
        boosters += [m for p in PROGRAMMES for m in model.fold_effect_models_[p]]
        constants = {j: m for j, m in enumerate(propensity) if isinstance(m, float)}
        _COMPILED[model] = (CompiledEnsemble([CompiledBooster(b) for b in boosters]), constants)
    return _COMPILED[model]


def compiled_predictions(model: PathwayEffectModel, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return what :meth:`PathwayEffectModel.estimate` needs, from compiled trees.

    Propensities with no other referral ``(n, k)``, the mean risk with no
    referral ``(n,)``, relative effects ``(n, k)`` and the two fold models'
    relative effects ``(n, k, 2)``: the same figures as scikit-learn's.
    """
    n, k = x.shape[0], len(PROGRAMMES)
    ensemble, constants = _compiled(model)
    out = ensemble.predict(np.column_stack([x, np.zeros((n, k))]))
    propensity = np.empty((n, k))
    column = 0
    for j in range(k):
        if j in constants:
            propensity[:, j] = constants[j]
        else:
            propensity[:, j] = out[:, column]
            column += 1
    outcomes = len(model.outcome_models_)
    baseline = out[:, column : column + outcomes].mean(axis=1)
    column += outcomes
    relative = out[:, column : column + k]
    folds = out[:, column + k :].reshape(n, k, 2)
    return propensity, baseline, relative, folds
