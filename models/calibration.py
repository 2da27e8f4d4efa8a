"""Turn a fitted model's log-odds score into a calibrated probability.

``ScoreCalibratedClassifier`` wraps an already fitted classifier and learns,
on a separate calibration split, a monotone map from its score to the
observed re-offending rate:

- ``"isotonic"`` (default): scores are cut into equal-count bins, each bin's
  rate is smoothed with one pseudo-observation each way (Laplace), the rates
  are made non-decreasing (pool adjacent violators, weighted by bin size) and
  joined by straight lines between bin centres. Unlike plain isotonic
  regression it never answers 0% or 100% for a person because a handful of
  extreme scores happened to share one outcome.
- ``"sigmoid"``: Platt scaling, a straight line on the log-odds.

The map is learned either from the fitted estimator's scores on a held-out
split (``fit``) or from out-of-fold scores of the same specification
(``fit_scores``, used by cross-fitting in :func:`models.risk.cross_fit`).

Both maps are non-decreasing in the score, so a reason that raises the score
never lowers the probability.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import isotonic_regression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

CalibrationMethod = Literal["isotonic", "sigmoid"]


class ScoreCalibratedClassifier(ClassifierMixin, BaseEstimator):
    """A fitted binary classifier plus a calibration of its score.

    Parameters
    ----------
    estimator
        An already fitted classifier with ``decision_function``; it is not
        refitted.
    method
        ``"isotonic"`` or ``"sigmoid"``.
    n_bins
        Most score bins for ``"isotonic"``; fewer when the split is small
        (at least 50 people per bin).

    Attributes
    ----------
    classes_ : ndarray
        The estimator's classes.
    knots_ : ndarray
        Scores at which the isotonic map is defined (bin centres).
    rates_ : ndarray
        Calibrated probability at each knot.
    platt_ : tuple of float
        Slope and intercept of the sigmoid map on the score.
    """

    def __init__(
        self,
        estimator: object = None,
        method: CalibrationMethod = "isotonic",
        n_bins: int = 50,
    ) -> None:
        self.estimator = estimator
        self.method = method
        self.n_bins = n_bins

    def fit(self, X: object, y: np.ndarray) -> ScoreCalibratedClassifier:
        """Learn the map from the estimator's score on ``X`` to the outcome ``y``."""
        check_is_fitted(self.estimator)
        score = np.asarray(self.estimator.decision_function(X), dtype=np.float64)  # type: ignore[attr-defined]
        return self.fit_scores(score, np.asarray(y))

    def fit_scores(self, score: np.ndarray, y: np.ndarray) -> ScoreCalibratedClassifier:
        """Learn the map from given scores of the estimator's kind to the outcome ``y``.

        For cross-fitting: ``score`` are out-of-fold scores of models of the
        same specification as ``estimator`` (each scored on rows it did not
        learn from), so the map is learned from every row without being
        learned on the estimator's own in-sample scores.

        Parameters
        ----------
        score
            Log-odds scores, one per row.
        y
            Observed outcomes, 0 or 1.

        Returns
        -------
        ScoreCalibratedClassifier
            ``self``, fitted.
        """
        if self.method not in ("isotonic", "sigmoid"):
            raise ValueError(f"method must be 'isotonic' or 'sigmoid', got {self.method!r}")
        check_is_fitted(self.estimator)
        score = np.asarray(score, dtype=np.float64)
        outcome = np.asarray(y, dtype=np.float64)
        if score.shape != outcome.shape or score.ndim != 1:
            raise ValueError("score and y must be one-dimensional and of the same length")
        if not np.isfinite(score).all():
            raise ValueError("calibration scores must be finite")
        if not np.isin(outcome, (0.0, 1.0)).all() or np.unique(outcome).size < 2:
            raise ValueError("calibration needs a binary outcome with both classes present")
        self.classes_ = self.estimator.classes_  # type: ignore[attr-defined]
        if self.method == "sigmoid":
            platt = LogisticRegression(C=np.inf).fit(score.reshape(-1, 1), outcome)
            self.platt_ = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
            return self
        bins = int(max(1, min(self.n_bins, score.size // 50)))
        order = np.argsort(score, kind="stable")
        groups = np.array_split(order, bins)
        counts = np.array([g.size for g in groups], dtype=np.float64)
        events = np.array([outcome[g].sum() for g in groups])
        centres = np.array([score[g].mean() for g in groups])
        smoothed = (events + 1) / (counts + 2)
        self.knots_ = centres
        self.rates_ = isotonic_regression(smoothed, sample_weight=counts, increasing=True)
        return self

    def decision_function(self, X: object) -> np.ndarray:
        """Return the wrapped estimator's score (log-odds before calibration)."""
        check_is_fitted(self)
        return np.asarray(self.estimator.decision_function(X), dtype=np.float64)  # type: ignore[attr-defined]

    def calibrate_scores(self, score: np.ndarray) -> np.ndarray:
        """Map scores to calibrated probabilities."""
        check_is_fitted(self)
        if self.method == "sigmoid":
            slope, intercept = self.platt_
            return expit(slope * score + intercept)
        # Beyond the outermost bin centres the rate is held (no extrapolation).
        return np.interp(score, self.knots_, self.rates_)

    def predict_proba(self, X: object) -> np.ndarray:
        """Return calibrated class probabilities, shape ``(n_rows, 2)``."""
        positive = self.calibrate_scores(self.decision_function(X))
        return np.column_stack([1 - positive, positive])

    def predict(self, X: object) -> np.ndarray:
        """Return the class with calibrated probability above one half."""
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]
