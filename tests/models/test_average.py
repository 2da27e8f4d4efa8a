from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from data.schema import TARGET_FIELD
from models.average import LogOddsAverage
from models.calibration import ScoreCalibratedClassifier
from models.explain import risk_pipeline
from models.risk import AverageSettings, BoostingSettings, ScorecardSettings, build_risk_model
from models.scorecard import BinnedLogisticScorecard
from tests.support.risk_models import FEATURES

Data = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


@parametrize_with_checks(
    [
        LogOddsAverage(
            [
                ("scorecard", BinnedLogisticScorecard(max_bins=4)),
                ("boosting", HistGradientBoostingClassifier(max_iter=10)),
            ]
        ),
        LogOddsAverage([("linear", LogisticRegression())], weights=[2.0]),
    ]
)
def test_follows_scikit_learn_estimator_rules(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def _data(n: int = 2_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-(X[:, 0] - 0.5 * X[:, 1])))).astype(int)
    return X, y


def test_score_is_the_weighted_mean_of_the_members_log_odds() -> None:
    X, y = _data()
    members = [("a", LogisticRegression(C=0.1)), ("b", BinnedLogisticScorecard(max_bins=6))]
    blend = LogOddsAverage(members, weights=[3.0, 1.0]).fit(X, y)
    a, b = (m.decision_function(X) for m in blend.estimators_)
    np.testing.assert_allclose(blend.weights_, [0.75, 0.25])
    np.testing.assert_allclose(blend.decision_function(X), 0.75 * a + 0.25 * b)
    np.testing.assert_allclose(
        blend.predict_proba(X)[:, 1], 1 / (1 + np.exp(-(0.75 * a + 0.25 * b)))
    )
    assert members[0][1] is not blend.estimators_[0]  # fitted clones, the parameters untouched


@pytest.mark.parametrize(
    ("members", "weights", "message"),
    [
        ([], None, "at least one estimator"),
        ([("a", LogisticRegression()), ("a", LogisticRegression())], None, "unique"),
        ([("a", LogisticRegression())], [1.0, 1.0], "one entry per estimator"),
        ([("a", LogisticRegression()), ("b", LogisticRegression())], [0.0, 0.0], "not all zero"),
        ([("a", LogisticRegression()), ("b", LogisticRegression())], [1.0, -1.0], "non-negative"),
    ],
)
def test_bad_members_or_weights_are_refused_at_fit(
    members: list[tuple[str, object]], weights: list[float] | None, message: str
) -> None:
    X, y = _data(200)
    with pytest.raises(ValueError, match=message):
        LogOddsAverage(members, weights=weights).fit(X, y)


def test_a_member_without_log_odds_is_refused() -> None:
    from sklearn.ensemble import RandomForestClassifier

    X, y = _data(200)
    with pytest.raises(ValueError, match="'forest' has no decision_function"):
        LogOddsAverage([("forest", RandomForestClassifier(n_estimators=3))]).fit(X, y)


def test_settings_check_one_weight_per_member() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="one entry per member"):
        AverageSettings(weights=(1.0,))
    with pytest.raises(ValidationError, match="at least 2"):
        AverageSettings(members=(ScorecardSettings(),))


def test_blend_pipeline_names_its_members_by_family() -> None:
    settings = AverageSettings(
        members=(ScorecardSettings(), ScorecardSettings(C=0.1), BoostingSettings())
    )
    blend = build_risk_model(FEATURES, settings).named_steps["model"]
    assert [name for name, _ in blend.estimators] == ["scorecard_0", "scorecard_1", "boosting"]


def test_blend_ranks_at_least_as_well_as_its_weaker_member(
    blend: ScoreCalibratedClassifier,
    scorecard: ScoreCalibratedClassifier,
    booster: ScoreCalibratedClassifier,
    risk_data: Data,
) -> None:
    test = risk_data[2]
    y = test[TARGET_FIELD].to_numpy(dtype=int)
    auc = {
        name: roc_auc_score(y, m.predict_proba(test)[:, 1])
        for name, m in (("blend", blend), ("scorecard", scorecard), ("booster", booster))
    }
    assert auc["blend"] >= min(auc["scorecard"], auc["booster"]) - 0.002
    assert auc["blend"] > 0.68


def test_more_previous_sanctions_never_lowers_the_blend_score(
    blend: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    # Both members respect the schema's directions, so their mean does too.
    people = risk_data[2].head(300).copy()
    people["juvenile_sanctions"] = 0
    scores = []
    for count in (0, 1, 3, 8, 20, 60):
        people["total_sanctions"] = count
        scores.append(risk_pipeline(blend).decision_function(people))
    assert all(np.all(b >= a - 1e-12) for a, b in itertools.pairwise(scores))
    assert np.all(scores[-1] > scores[0])
