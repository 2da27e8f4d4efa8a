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
    assessed = people[explanation.features].notna().to_numpy()
    assert len(reasons) == 20
    assert all(len(r) == min(3, a.sum()) for r, a in zip(reasons, assessed, strict=True))
    for i, row in enumerate(reasons):
        sizes = [abs(r.contribution) for r in row]
        assert sizes == sorted(sizes, reverse=True)
        largest = np.abs(explanation.contributions[i])[assessed[i]].max()
        assert sizes[0] == pytest.approx(largest)
        for reason in row:
            assert reason.direction == ("raises" if reason.contribution > 0 else "lowers")
            # A field not assessed is never a reason: every reason has the value given.
            assert reason.value is not None and not pd.isna(reason.value)
            assert reason.value == people.iloc[i][reason.feature]


def test_a_field_not_assessed_is_never_a_reason(
    scorecard: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    people = risk_data[2].head(50).copy()
    explanation = explain(scorecard, people)
    # Blank the field that moved each row most: it must not come back as a null reason.
    top = np.abs(explanation.contributions).argmax(axis=1)
    for i, j in enumerate(top):
        people.iloc[i, people.columns.get_loc(explanation.features[j])] = None
    explanation = explain(scorecard, people)
    for i, row in enumerate(top_reasons(explanation, people, limit=3)):
        assert row and all(r.value is not None and not pd.isna(r.value) for r in row)
        assert explanation.features[top[i]] not in {r.feature for r in row}


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
    # A field not assessed ranks after every assessed one, however large its part.
    assessed = np.array([[True, False, True, True], [True, True, True, True]])
    order, picked = top_contributions(contributions, 3, assessed)
    assert order.tolist() == [[2, 0, 3], [0, 1, 2]]
