"""The log-odds mixin: probabilities and labels follow from ``decision_function``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from models.log_odds import LogOddsClassifierMixin, binary_classes


class _Fixed(LogOddsClassifierMixin, BaseEstimator):
    """A classifier whose score is the first column ('fitted' once it has classes)."""

    def fit(self, classes: np.ndarray) -> _Fixed:
        self.classes_ = classes
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=float)[:, 0]


def test_binary_classes_returns_labels_and_each_rows_index() -> None:
    classes, index = binary_classes("Thing", np.array(["yes", "no", "yes"]))
    assert classes.tolist() == ["no", "yes"]
    assert index.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([1, 1, 1]), "Thing needs two classes; y has only one class"),
        (np.array([0, 1, 2]), "Only binary classification is supported: Thing got 3 classes"),
        (np.array([0.5, 1.5]), "Unknown label type"),
    ],
)
def test_binary_classes_refuses_other_targets(y: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        binary_classes("Thing", y)


def test_probabilities_are_the_logistic_of_the_score_and_sum_to_one() -> None:
    X = np.array([[-2.0], [0.0], [3.0]])
    proba = _Fixed().fit(np.array([0, 1])).predict_proba(X)
    assert proba.shape == (3, 2)
    np.testing.assert_allclose(proba[:, 1], expit(X[:, 0]))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_predict_takes_the_second_class_only_above_zero() -> None:
    model = _Fixed().fit(np.array(["low", "high"]))
    assert model.predict(np.array([[-0.1], [0.0], [0.1]])).tolist() == ["low", "low", "high"]


def test_an_unfitted_classifier_refuses_to_predict() -> None:
    with pytest.raises(NotFittedError):
        _Fixed().predict_proba(np.array([[1.0]]))
