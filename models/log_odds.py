"""Binary classifiers defined by a log-odds score.

The scorecard and the blend both answer with ``decision_function`` (the
log-odds of the second class); probabilities and labels follow from it the
same way for both, here, and both accept the same targets.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted


def binary_classes(estimator: str, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the two class labels of ``y`` and each row's index into them.

    Raises
    ------
    ValueError
        If ``y`` is not a classification target or does not hold exactly two
        classes (named after ``estimator``, as scikit-learn's checks expect).
    """
    check_classification_targets(y)
    classes, index = np.unique(y, return_inverse=True)
    if classes.size == 1:
        raise ValueError(f"{estimator} needs two classes; y has only one class")
    if type_of_target(y, input_name="y") != "binary":
        raise ValueError(
            f"Only binary classification is supported: {estimator} got {classes.size} classes"
        )
    return classes, index


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
