"""Golden scores on the served path: ``Scorer`` and ``Recommender`` give the pinned outputs.

Built straight from the fitted golden models (no MLflow); the pinned file
(tests/golden/expected.json) is only read here, rewritten by ``make golden WHY="..."``.
"""

from __future__ import annotations

from typing import Any

import pytest

from models.bands import RiskBands
from serving.scorer import Scorer
from tests.support import golden

RISK_MODELS = [spec.name for spec in golden.RISK_SPECS]


@pytest.fixture(scope="session")
def expected() -> dict[str, Any]:
    return golden.load_expected()


@pytest.fixture(scope="session")
def models() -> golden.GoldenModels:
    """Fitted once per session (cached in tests.support.golden), on one thread."""
    return golden.fit_golden_models()


@pytest.mark.parametrize("name", RISK_MODELS)
def test_the_scorer_gives_the_pinned_scores(
    name: str, models: golden.GoldenModels, expected: dict[str, Any]
) -> None:
    got = {name: golden.served_risk(models.risk[name])}
    golden.assert_matches("served", "risk", got, expected)


def test_served_reasons_echo_the_assessment_values(models: golden.GoldenModels) -> None:
    items = golden.validated_assessments()
    scores = Scorer(models.risk["average"], RiskBands(), golden.TOP_REASONS).score(items)
    for item, score in zip(items, scores, strict=True):
        for reason in score["reasons"]:
            assert reason["value"] == getattr(item, reason["feature"])


def test_the_recommender_gives_the_pinned_answers(
    models: golden.GoldenModels, expected: dict[str, Any]
) -> None:
    got = {"pathways": golden.served_recommendations(models.pathways)}
    golden.assert_matches("served", "pathway_recommendations", got, expected)
