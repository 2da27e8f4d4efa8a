from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from sklearn.calibration import CalibratedClassifierCV

from models.explain import EXACT, TREE_PATH, explain, feature_effects, top_reasons

Data = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


@pytest.mark.parametrize(("family", "method"), [("scorecard", EXACT), ("booster", TREE_PATH)])
def test_reasons_sum_to_the_calibrated_logit(
    family: str, method: str, risk_data: Data, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(family)
    people = risk_data[2].head(500)
    explanation = explain(model, people)
    p = model.predict_proba(people)[:, 1]
    total = explanation.base_value + explanation.contributions.sum(axis=1)
    np.testing.assert_allclose(total, logit(p), atol=1e-9)
    np.testing.assert_allclose(explanation.logit, logit(p), atol=1e-9)
    assert explanation.method == method


def test_uncalibrated_pipeline_is_explained_too(
    scorecard: CalibratedClassifierCV, risk_data: Data
) -> None:
    pipeline = scorecard.calibrated_classifiers_[0].estimator.estimator
    people = risk_data[2].head(100)
    explanation = explain(pipeline, people)
    np.testing.assert_allclose(explanation.logit, pipeline.decision_function(people), atol=1e-9)


def test_top_reasons_are_the_largest_contributions(
    scorecard: CalibratedClassifierCV, risk_data: Data
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
    scorecard: CalibratedClassifierCV, risk_data: Data
) -> None:
    people = risk_data[2]
    effects = feature_effects(explain(scorecard, people), people)
    drug = effects[effects.feature == "drug_misuse"].set_index("level")["contribution"]
    assert set(drug.index) == {"0", "1", "2", "not assessed"}
    assert drug["2"] > drug["0"]
    assert set(effects.columns) == {"feature", "level", "n", "contribution"}
