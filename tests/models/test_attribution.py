"""Attribution by estimator, and the fast explainer that scores and explains in one walk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.attribution import FastExplainer, estimator_attribution
from models.calibration import ScoreCalibratedClassifier
from models.explain import explain, risk_pipeline

Data = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


@pytest.mark.parametrize("family", ["scorecard", "booster", "blend"])
def test_fast_explainer_matches_the_model_and_explain(
    family: str, risk_data: Data, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(family)
    people = risk_data[2].head(1_000)
    fast = FastExplainer(model, threads=2).explain(people)
    slow = explain(model, people)
    np.testing.assert_allclose(fast.probability, model.predict_proba(people)[:, 1], atol=1e-12)
    np.testing.assert_allclose(fast.contributions, slow.contributions, atol=1e-12)
    np.testing.assert_allclose(fast.base_value, slow.base_value)
    assert fast.method == slow.method


def test_fast_explainer_refuses_an_uncalibrated_pipeline(
    scorecard: ScoreCalibratedClassifier,
) -> None:
    with pytest.raises(TypeError, match="calibrated risk pipeline"):
        FastExplainer(risk_pipeline(scorecard))  # type: ignore[arg-type]


def test_blend_reasons_are_the_weighted_mean_of_its_members_reasons(
    blend: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    people = risk_data[2].head(300)
    pipeline = risk_pipeline(blend)
    average = pipeline.named_steps["model"]
    X = pipeline.named_steps["encode"].transform(people)
    members = [estimator_attribution(member).contributions(X) for member in average.estimators_]
    expected = sum(w * c for w, c in zip(average.weights_, members, strict=True))
    np.testing.assert_allclose(explain(blend, people).contributions, expected, atol=1e-12)
