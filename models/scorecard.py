"""An additive scorecard: logistic regression on binned features.

Each feature is cut into bins (its own values when it has few, else quantile
bins) plus a bin for "missing", and every bin gets a points value in
log-odds. A score is the sum of one value per feature, so it explains itself
exactly: each feature's contribution is its bin's value. Where the direction
of a risk factor is established (more previous sanctions never lowers risk),
the bin values are projected onto that order so the scorecard cannot learn a
noisy reversal.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import isotonic_regression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted, validate_data

from models.log_odds import LogOddsClassifierMixin, binary_classes


class BinnedLogisticScorecard(LogOddsClassifierMixin, ClassifierMixin, BaseEstimator):
    """Binary classifier whose log-odds are a sum of per-feature bin values.

    Parameters
    ----------
    max_bins
        Most bins per numeric feature (besides the missing bin). A feature
        with at most this many distinct values gets one bin per value.
    C
        Inverse L2 penalty of the logistic regression on the bin indicators.
    categorical_features
        Boolean mask of columns whose values are category codes: each code
        gets its own bin and no order is imposed.
    monotonic_cst
        Per column: +1 the log-odds may not fall as the value rises, -1 may
        not rise, 0 unconstrained. The missing bin is never constrained.
    max_iter
        Iterations of the logistic regression solver.

    Attributes
    ----------
    thresholds_ : list of ndarray
        Per feature, the bin edges: a value ``x`` falls in bin
        ``searchsorted(thresholds, x, side="right")``.
    bin_values_ : list of ndarray
        Per feature, the log-odds contribution of each bin (last entry:
        missing), centred so that their training-weighted mean is zero.
    bin_counts_ : list of ndarray
        Training rows in each bin.
    base_value_ : float
        Log-odds of a person whose every contribution is zero.
    classes_ : ndarray
        The two class labels.
    n_iter_ : ndarray
        Iterations the logistic regression solver ran.
    """

    def __init__(
        self,
        max_bins: int = 12,
        C: float = 1.0,
        categorical_features: np.ndarray | None = None,
        monotonic_cst: np.ndarray | None = None,
        max_iter: int = 1000,
    ) -> None:
        self.max_bins = max_bins
        self.C = C
        self.categorical_features = categorical_features
        self.monotonic_cst = monotonic_cst
        self.max_iter = max_iter

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]  # sklearn's Tags type
        """Declare NaN support and binary-only targets to scikit-learn's checks."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags

    def _column_flags(self, n_features: int) -> tuple[np.ndarray, np.ndarray]:
        categorical = (
            np.zeros(n_features, dtype=bool)
            if self.categorical_features is None
            else np.asarray(self.categorical_features, dtype=bool)
        )
        monotonic = (
            np.zeros(n_features, dtype=int)
            if self.monotonic_cst is None
            else np.asarray(self.monotonic_cst, dtype=int)
        )
        if categorical.shape != (n_features,) or monotonic.shape != (n_features,):
            raise ValueError(
                f"categorical_features and monotonic_cst need one entry per feature ({n_features})"
            )
        if not np.isin(monotonic, (-1, 0, 1)).all():
            raise ValueError("monotonic_cst entries must be -1, 0 or 1")
        return categorical, monotonic

    def _make_thresholds(self, column: np.ndarray, categorical: bool) -> np.ndarray:
        present = column[~np.isnan(column)]
        values = np.unique(present)
        if values.size <= 1:
            return np.empty(0)
        if categorical or values.size <= self.max_bins:
            return (values[:-1] + values[1:]) / 2
        quantiles = np.quantile(present, np.linspace(0, 1, self.max_bins + 1)[1:-1])
        edges = np.unique(quantiles)
        # A quantile that equals a value would put that value above its edge.
        return edges[edges > values[0]]

    def _bin(self, X: np.ndarray) -> np.ndarray:
        bins = np.empty(X.shape, dtype=np.intp)
        for j, thresholds in enumerate(self.thresholds_):
            column = X[:, j]
            bins[:, j] = np.searchsorted(thresholds, column, side="right")
            bins[np.isnan(column), j] = thresholds.size + 1
        return bins

    def fit(self, X: np.ndarray, y: np.ndarray) -> BinnedLogisticScorecard:
        """Bin the features and fit bin values by penalised logistic regression.

        Parameters
        ----------
        X
            Numeric features, ``NaN`` for missing.
        y
            Two class labels.

        Returns
        -------
        BinnedLogisticScorecard
            The fitted scorecard.
        """
        if self.max_bins < 2:
            raise ValueError(f"max_bins must be at least 2, got {self.max_bins}")
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        self.classes_, y_index = binary_classes("BinnedLogisticScorecard", y)
        categorical, monotonic = self._column_flags(X.shape[1])
        self.thresholds_ = [
            self._make_thresholds(X[:, j], bool(categorical[j])) for j in range(X.shape[1])
        ]
        bins = self._bin(X)
        widths = np.array([t.size + 2 for t in self.thresholds_])  # bins + missing bin
        offsets = np.concatenate([[0], np.cumsum(widths)[:-1]])
        rows = np.repeat(np.arange(X.shape[0]), X.shape[1])
        design = sp.csr_matrix(
            (np.ones(rows.size), (rows, (bins + offsets).ravel())),
            shape=(X.shape[0], int(widths.sum())),
        )
        regression = LogisticRegression(C=self.C, max_iter=self.max_iter)
        regression.fit(design, y_index)
        self.n_iter_ = regression.n_iter_
        coef = regression.coef_.ravel()

        self.bin_counts_ = [np.bincount(bins[:, j], minlength=w) for j, w in enumerate(widths)]
        self.bin_values_ = []
        for j, (start, width) in enumerate(zip(offsets, widths, strict=True)):
            values = coef[start : start + width].copy()
            counts = self.bin_counts_[j].astype(np.float64)
            if monotonic[j] != 0:
                ordered = slice(0, width - 1)  # the missing bin keeps its own value
                values[ordered] = isotonic_regression(
                    values[ordered],
                    sample_weight=np.maximum(counts[ordered], 1e-9),
                    increasing=bool(monotonic[j] > 0),
                )
            centre = np.average(values, weights=counts) if counts.sum() else 0.0
            self.bin_values_.append(values - centre)
        contributions = self._contributions_of_bins(bins)
        self.base_value_ = _intercept_for(contributions.sum(axis=1), y_index)
        return self

    def _contributions_of_bins(self, bins: np.ndarray) -> np.ndarray:
        out = np.empty(bins.shape, dtype=np.float64)
        for j, values in enumerate(self.bin_values_):
            out[:, j] = values[bins[:, j]]
        return out

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Return each feature's log-odds contribution, shape ``(n_rows, n_features)``.

        ``base_value_ + contributions(X).sum(axis=1)`` equals
        ``decision_function(X)`` exactly.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return self._contributions_of_bins(self._bin(X))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Return the log-odds of the second class."""
        check_is_fitted(self)
        return self.base_value_ + self.contributions(X).sum(axis=1)


def _intercept_for(scores: np.ndarray, y: np.ndarray, steps: int = 50) -> float:
    """Solve for the intercept that makes mean predicted equal observed (Newton)."""
    intercept = 0.0
    for _ in range(steps):
        p = expit(intercept + scores)
        gradient = float(np.sum(p - y))
        hessian = float(np.sum(p * (1 - p)))
        if hessian <= 0:
            break
        step = gradient / hessian
        intercept -= step
        if abs(step) < 1e-10:
            break
    return intercept
