"""How a fitted risk estimator splits its log-odds score among the features.

For the scorecard the contributions are exact: each is the feature's bin
value. For gradient boosting they are tree-path attributions
(:mod:`models.tree_paths`). For a blend (:class:`models.average.LogOddsAverage`)
they are the same weighted mean of its members' contributions as its score
is of theirs, so they too sum to its log-odds exactly; the label names the
members' methods. :class:`FastExplainer` prepares a calibrated model once to
score and explain many rows (the batch and serving path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from models.average import LogOddsAverage
from models.calibration import ScoreCalibratedClassifier
from models.encoding import AssessmentEncoder
from models.scorecard import BinnedLogisticScorecard
from models.tree_paths import compile_trees, tree_path_contributions

EXACT = "exact (additive scorecard)"
TREE_PATH = "tree-path (approximate attribution)"
AVERAGE = "weighted mean of the members' attributions"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Contributions of each feature to each row's log-odds score.

    ``base_value + contributions.sum(axis=1) == logit`` holds to float
    precision; ``probability`` is the calibrated probability of that score.
    """

    features: list[str]
    base_value: float
    contributions: np.ndarray
    logit: np.ndarray
    probability: np.ndarray
    method: str


@dataclass(frozen=True, slots=True)
class Attribution:
    """How one fitted estimator splits its log-odds score among the features."""

    base_value: float
    contributions: Callable[[np.ndarray], np.ndarray]
    method: str


def estimator_attribution(estimator: object, threads: int = 1) -> Attribution:
    """Prepare the attribution of a scorecard, a booster or a blend of them, once."""
    if isinstance(estimator, BinnedLogisticScorecard):
        return Attribution(float(estimator.base_value_), estimator.contributions, EXACT)
    if isinstance(estimator, HistGradientBoostingClassifier):
        trees = compile_trees(estimator)
        return Attribution(
            trees.base_value, lambda X: tree_path_contributions(trees, X, threads), TREE_PATH
        )
    if isinstance(estimator, LogOddsAverage):
        parts = [estimator_attribution(member, threads) for member in estimator.estimators_]
        weights = estimator.weights_

        def blended(X: np.ndarray) -> np.ndarray:
            total = np.zeros((X.shape[0], X.shape[1]))
            for weight, part in zip(weights, parts, strict=True):
                total += weight * part.contributions(X)
            return total

        base = float(sum(w * part.base_value for w, part in zip(weights, parts, strict=True)))
        methods = sorted({part.method for part in parts})
        return Attribution(base, blended, f"{AVERAGE}: " + ", ".join(methods))
    raise TypeError(f"no explanation method for {type(estimator).__name__}")


class FastExplainer:
    """A calibrated risk model prepared once to score and explain many rows.

    The trees of a booster are compiled once (:func:`models.tree_paths.compile_trees`), and
    the probability is calibrated from the log-odds the contributions add up
    to, so the model's trees are walked once per row, not twice (once for
    ``predict_proba`` and again for the reasons).

    Parameters
    ----------
    model
        A fitted ``ScoreCalibratedClassifier`` around an ``encode`` +
        ``model`` pipeline (scorecard, gradient boosting or their blend).
    threads
        Threads that share the rows of a large batch (gradient boosting).

    Raises
    ------
    TypeError
        If the model is not such a pipeline, or its estimator has no
        explanation method.
    """

    def __init__(self, model: ScoreCalibratedClassifier, *, threads: int = 1) -> None:
        pipeline = getattr(model, "estimator", None)
        if not isinstance(model, ScoreCalibratedClassifier) or not isinstance(pipeline, Pipeline):
            raise TypeError(f"expected a calibrated risk pipeline, got {type(model).__name__}")
        encoder = pipeline.named_steps.get("encode")
        if not isinstance(encoder, AssessmentEncoder):
            raise TypeError("the risk pipeline has no AssessmentEncoder 'encode' step")
        self.model = model
        self.encoder = encoder
        self.estimator = pipeline.named_steps.get("model")
        self.threads = threads
        self.features: tuple[str, ...] = tuple(encoder.features_)
        self._attribution = estimator_attribution(self.estimator, threads)
        self.method = self._attribution.method

    @property
    def base_value(self) -> float:
        """The log-odds score before any feature's contribution."""
        return self._attribution.base_value

    def logit_and_contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the log-odds score and each feature's contribution to it, for encoded rows.

        The sum equals the estimator's ``decision_function`` to float rounding
        (exactly for the scorecard, about 1e-15 for the trees).
        """
        contributions = self._attribution.contributions(X)
        return self._attribution.base_value + contributions.sum(axis=1), contributions

    def explain(self, assessments: pd.DataFrame) -> Explanation:
        """Return the calibrated probability and contributions of each assessment."""
        logit, contributions = self.logit_and_contributions(self.encoder.transform(assessments))
        return Explanation(
            features=list(self.features),
            base_value=self.base_value,
            contributions=contributions,
            logit=logit,
            probability=self.model.calibrate_scores(logit),
            method=self.method,
        )
