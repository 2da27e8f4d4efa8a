"""A blend of risk models: the weighted mean of their log-odds scores.

Averaging the log-odds of an additive scorecard and of gradient boosting
keeps what each does well: the scorecard's smooth, monotone steps and the
booster's interactions. On the Broward County data, over re-drawn 80/20
splits, the mean of the two ranked unseen people a little better than
either alone and had the lower log loss (``docs/real-data.md``).

The blend stays explainable: its score is a weighted sum of scores that
each sum per-feature contributions, so the same weighted sum of the
members' contributions adds up to the blend's score exactly
(:mod:`models.explain`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted, validate_data

from models.log_odds import LogOddsClassifierMixin, binary_classes


class LogOddsAverage(LogOddsClassifierMixin, ClassifierMixin, BaseEstimator):
    """Binary classifier whose log-odds are the weighted mean of its members' log-odds.

    Parameters
    ----------
    estimators
        ``(name, estimator)`` pairs; every estimator needs a
        ``decision_function`` giving the log-odds of the second class. They
        are cloned and each fitted on all of ``X``.
    weights
        One non-negative weight per estimator (normalised to sum to 1);
        ``None`` weighs them equally.

    Attributes
    ----------
    estimators_ : list of estimator
        The fitted clones, in the order given.
    weights_ : ndarray
        The normalised weights.
    classes_ : ndarray
        The two class labels.
    """

    def __init__(
        self,
        estimators: Sequence[tuple[str, object]] = (),
        weights: Sequence[float] | None = None,
    ) -> None:
        self.estimators = estimators
        self.weights = weights

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]  # sklearn's Tags type
        """Declare NaN support (when every member has it) and binary-only targets."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = all(
            estimator.__sklearn_tags__().input_tags.allow_nan  # type: ignore[attr-defined]
            for _, estimator in self.estimators
        )
        tags.classifier_tags.multi_class = False
        return tags

    def _finite(self) -> bool | str:
        """Return what ``validate_data`` allows: ``NaN`` only when every member accepts it."""
        return "allow-nan" if self.__sklearn_tags__().input_tags.allow_nan else True

    def _checked_weights(self) -> np.ndarray:
        count = len(self.estimators)
        if self.weights is None:
            return np.full(count, 1.0 / count)
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.shape != (count,):
            raise ValueError(f"weights needs one entry per estimator ({count}), got {weights.size}")
        if not np.all(np.isfinite(weights)) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
        normalised: np.ndarray = weights / weights.sum()
        return normalised

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogOddsAverage:
        """Fit a clone of every member on ``X``, ``y``.

        Parameters
        ----------
        X
            Features, in whatever form the members accept (``NaN`` for missing).
        y
            Two class labels.

        Returns
        -------
        LogOddsAverage
            The fitted blend.

        Raises
        ------
        ValueError
            If there are no members, names repeat, a member has no
            ``decision_function``, the weights are invalid or ``y`` is not binary.
        """
        names = [name for name, _ in self.estimators]
        if not names:
            raise ValueError("LogOddsAverage needs at least one estimator")
        if len(set(names)) != len(names):
            raise ValueError(f"estimator names must be unique, got {names}")
        for name, estimator in self.estimators:
            if not hasattr(estimator, "decision_function"):
                raise ValueError(f"estimator {name!r} has no decision_function (log-odds)")
        self.weights_ = self._checked_weights()
        X, y = validate_data(self, X, y, ensure_all_finite=self._finite(), dtype=np.float64)
        self.classes_, _ = binary_classes("LogOddsAverage", y)
        self.estimators_ = [clone(estimator).fit(X, y) for _, estimator in self.estimators]
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Return the weighted mean of the members' log-odds of the second class."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite=self._finite(), dtype=np.float64)
        score = np.zeros(X.shape[0])
        for weight, estimator in zip(self.weights_, self.estimators_, strict=True):
            score += weight * estimator.decision_function(X)
        return score
