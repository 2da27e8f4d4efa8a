"""Golden scores on the served path: ``Scorer`` and ``Recommender`` give the pinned outputs.

Built straight from the fitted golden models (no MLflow); the pinned file
(tests/golden/expected.json) is only read here, rewritten by ``make golden WHY="..."``.
"""

from __future__ import annotations

import pytest

from models.bands import RiskBands
from serving.scorer import Scorer
from tests.support import golden

# The golden models are fitted once per process (fit_golden_models is cached), on one thread.


@pytest.mark.parametrize("name", golden.RISK_MODELS)
def test_the_scorer_gives_the_pinned_scores(name: str) -> None:
    got = {name: golden.served_risk(golden.fit_golden_models().risk[name])}
    golden.assert_matches("served", "risk", got, golden.load_expected())


def test_served_reasons_echo_the_assessment_values() -> None:
    items = golden.validated_assessments()
    model = golden.fit_golden_models().risk["average"]
    scores = Scorer(model, RiskBands(), golden.TOP_REASONS).score(items)
    for item, score in zip(items, scores, strict=True):
        for reason in score["reasons"]:
            assert reason["value"] == getattr(item, reason["feature"])


def test_the_recommender_gives_the_pinned_answers() -> None:
    got = {"pathways": golden.served_recommendations(golden.fit_golden_models().pathways)}
    golden.assert_matches("served", "pathway_recommendations", got, golden.load_expected())
