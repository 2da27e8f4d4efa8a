from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from models.calibration import ScoreCalibratedClassifier


def _s_shaped(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, LogisticRegression]:
    """Outcomes whose rate is an S-shaped (not logistic) function of a fitted model's score."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1))
    rate = 0.1 + 0.5 * expit(4 * x[:, 0])  # saturates at 0.1 and 0.6
    y = (rng.random(n) < rate).astype(int)
    return x, y, LogisticRegression().fit(x, y)


def _ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    order = np.argsort(p)
    parts = np.array_split(order, bins)
    return float(sum(abs(y[g].mean() - p[g].mean()) * g.size for g in parts) / y.size)


def test_isotonic_fixes_what_a_straight_line_cannot() -> None:
    x, y, model = _s_shaped(40_000, 0)
    x_test, y_test, _ = _s_shaped(40_000, 1)
    isotonic = ScoreCalibratedClassifier(model, "isotonic").fit(x, y)
    sigmoid = ScoreCalibratedClassifier(model, "sigmoid").fit(x, y)
    iso_error = _ece(y_test, isotonic.predict_proba(x_test)[:, 1])
    assert iso_error < 0.01
    assert _ece(y_test, sigmoid.predict_proba(x_test)[:, 1]) > 2 * iso_error


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_probability_never_falls_as_the_score_rises(method: str) -> None:
    x, y, model = _s_shaped(5_000, 2)
    calibrated = ScoreCalibratedClassifier(model, method).fit(x, y)  # type: ignore[arg-type]
    grid = np.linspace(-6, 6, 500).reshape(-1, 1)
    assert np.all(np.diff(calibrated.predict_proba(grid)[:, 1]) >= 0)
    np.testing.assert_allclose(calibrated.decision_function(grid), model.decision_function(grid))


def test_small_splits_never_give_certainty() -> None:
    x, y, model = _s_shaped(300, 3)
    p = ScoreCalibratedClassifier(model).fit(x, y).predict_proba(np.array([[-50.0], [50.0]]))
    assert np.all((p > 0) & (p < 1))


def test_bad_inputs_are_refused() -> None:
    x, y, model = _s_shaped(300, 4)
    with pytest.raises(ValueError, match="both classes"):
        ScoreCalibratedClassifier(model).fit(x, np.zeros_like(y))
    with pytest.raises(ValueError, match="method"):
        ScoreCalibratedClassifier(model, "beta").fit(x, y)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_fit_scores_learns_the_same_map_as_fit_on_those_scores(method: str) -> None:
    x, y, model = _s_shaped(4_000, 5)
    from_rows = ScoreCalibratedClassifier(model, method).fit(x, y)  # type: ignore[arg-type]
    from_scores = ScoreCalibratedClassifier(model, method).fit_scores(  # type: ignore[arg-type]
        model.decision_function(x), y
    )
    grid = np.linspace(-4, 4, 50).reshape(-1, 1)
    np.testing.assert_allclose(from_scores.predict_proba(grid), from_rows.predict_proba(grid))


def test_fit_scores_refuses_scores_that_do_not_fit_the_outcome() -> None:
    x, y, model = _s_shaped(300, 6)
    score = model.decision_function(x)
    with pytest.raises(ValueError, match="same length"):
        ScoreCalibratedClassifier(model).fit_scores(score[:-1], y)
    with pytest.raises(ValueError, match="finite"):
        ScoreCalibratedClassifier(model).fit_scores(np.where(y == 1, np.nan, score), y)
    with pytest.raises(ValueError, match="both classes"):
        ScoreCalibratedClassifier(model).fit_scores(score, np.ones_like(y))
