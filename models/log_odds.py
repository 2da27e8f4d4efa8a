"""Binary classifiers defined by a log-odds score.

The scorecard and the blend both answer with ``decision_function`` (the
log-odds of the second class); probabilities and labels follow from it the
same way for both, here.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.utils.validation import check_is_fitted


class LogOddsClassifierMixin:
    """``predict_proba`` and ``predict`` of a fitted binary ``decision_function``.

    The class using it provides ``decision_function`` and ``classes_``.
    """

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return class probabilities, shape ``(n_rows, 2)``: the logistic of the log-odds."""
        check_is_fitted(self)
        positive = expit(self.decision_function(X))  # type: ignore[attr-defined]
        return np.column_stack([1 - positive, positive])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return the more probable class label."""
        check_is_fitted(self)
        classes: np.ndarray = self.classes_  # type: ignore[attr-defined]
        return classes[(self.decision_function(X) > 0).astype(int)]  # type: ignore[attr-defined]
