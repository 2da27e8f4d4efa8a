from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.calibration import ScoreCalibratedClassifier
from models.explain import (
    AVERAGE,
    EXACT,
    TREE_PATH,
    explain,
    feature_effects,
    risk_pipeline,
    top_contributions,
    top_reasons,
)

Data = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


@pytest.mark.parametrize(
    ("family", "method"),
    [("scorecard", EXACT), ("booster", TREE_PATH), ("blend", f"{AVERAGE}: {EXACT}, {TREE_PATH}")],
)
def test_reasons_sum_to_the_model_logit(
    family: str, method: str, risk_data: Data, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(family)
    people = risk_data[2].head(500)
    explanation = explain(model, people)
    score = risk_pipeline(model).decision_function(people)
    total = explanation.base_value + explanation.contributions.sum(axis=1)
    np.testing.assert_allclose(total, score, atol=1e-9)
    np.testing.assert_allclose(explanation.logit, score, atol=1e-9)
    np.testing.assert_allclose(explanation.probability, model.predict_proba(people)[:, 1])
    assert explanation.method == method


@pytest.mark.parametrize("family", ["scorecard", "booster", "blend"])
def test_calibrated_probability_never_falls_as_the_score_rises(
    family: str, risk_data: Data, request: pytest.FixtureRequest
) -> None:
    explanation = explain(request.getfixturevalue(family), risk_data[2])
    order = np.argsort(explanation.logit)
    assert np.all(np.diff(explanation.probability[order]) >= -1e-12)


def test_uncalibrated_pipeline_is_explained_too(
    scorecard: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    pipeline = risk_pipeline(scorecard)
    people = risk_data[2].head(100)
    explanation = explain(pipeline, people)
    np.testing.assert_allclose(explanation.logit, pipeline.decision_function(people), atol=1e-9)


def test_top_reasons_are_the_largest_contributions(
    scorecard: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    people = risk_data[2].head(20)
    explanation = explain(scorecard, people)
    reasons = top_reasons(explanation, people, limit=3)
    assert len(reasons) == 20 and all(len(r) == 3 for r in reasons)
    for i, row in enumerate(reasons):
        sizes = [abs(r.contribution) for r in row]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(explanation.contributions[i]).max())
        for reason in row:
            assert reason.direction == ("raises" if reason.contribution > 0 else "lowers")
            value = people.iloc[i][reason.feature]
            assert reason.value == (None if pd.isna(value) else value)


def test_feature_effects_show_the_risk_drivers(
    scorecard: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    people = risk_data[2]
    effects = feature_effects(explain(scorecard, people), people)
    drug = effects[effects.feature == "drug_misuse"].set_index("level")["contribution"]
    assert set(drug.index) == {"0", "1", "2", "not assessed"}
    assert drug["2"] > drug["0"]
    assert set(effects.columns) == {"feature", "level", "n", "contribution"}


def test_top_contributions_orders_by_size_and_keeps_signs() -> None:
    contributions = np.array([[0.1, -0.5, 0.3, 0.0], [0.2, 0.2, -0.2, 0.05]])
    order, picked = top_contributions(contributions, 3)
    assert order.tolist() == [[1, 2, 0], [0, 1, 2]]
    assert picked.tolist() == [[-0.5, 0.3, 0.1], [0.2, 0.2, -0.2]]
