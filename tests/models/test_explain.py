from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.calibration import ScoreCalibratedClassifier
from models.explain import (
    AVERAGE,
    EXACT,
    TREE_PATH,
    FastExplainer,
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


def test_batch_and_single_row_tree_paths_agree(
    booster: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    from models.explain import BATCH_ROWS, compile_trees, tree_path_contributions

    pipeline = risk_pipeline(booster)
    people = risk_data[2].head(BATCH_ROWS + 50)
    X = pipeline.named_steps["encode"].transform(people)
    trees = compile_trees(pipeline.named_steps["model"])
    batch = tree_path_contributions(trees, X)  # compiled leaf lookup
    one_by_one = np.vstack([tree_path_contributions(trees, X[i : i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-12)
    np.testing.assert_allclose(
        trees.base_value + batch.sum(axis=1), pipeline.decision_function(people), atol=1e-9
    )


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


def test_top_contributions_orders_by_size_and_keeps_signs() -> None:
    contributions = np.array([[0.1, -0.5, 0.3, 0.0], [0.2, 0.2, -0.2, 0.05]])
    order, picked = top_contributions(contributions, 3)
    assert order.tolist() == [[1, 2, 0], [0, 1, 2]]
    assert picked.tolist() == [[-0.5, 0.3, 0.1], [0.2, 0.2, -0.2]]
    # A field not assessed ranks after every assessed one, however large its part.
    assessed = np.array([[True, False, True, True], [True, True, True, True]])
    order, picked = top_contributions(contributions, 3, assessed)
    assert order.tolist() == [[2, 0, 3], [0, 1, 2]]


def test_fast_explainer_refuses_an_uncalibrated_pipeline(
    scorecard: ScoreCalibratedClassifier,
) -> None:
    with pytest.raises(TypeError, match="calibrated risk pipeline"):
        FastExplainer(risk_pipeline(scorecard))  # type: ignore[arg-type]


def test_grouped_tree_lookup_matches_the_walk_of_each_tree(risk_data: Data) -> None:
    from data.schema import TARGET_FIELD
    from models.explain import _batch_contributions, compile_trees, tree_path_contributions
    from models.risk import BoostingSettings, build_risk_model

    from .conftest import FEATURES

    train, _, test = risk_data
    settings = BoostingSettings(max_iter=30, max_leaf_nodes=6)
    pipeline = build_risk_model(tuple(FEATURES), settings).fit(
        train.head(5_000), train[TARGET_FIELD].head(5_000).astype(int)
    )
    booster = pipeline.named_steps["model"]
    trees = compile_trees(booster)
    assert len(trees.leaf_finders) < len(booster._predictors)  # trees really were grouped
    X = pipeline.named_steps["encode"].transform(test.head(600))
    walked = np.vstack([tree_path_contributions(trees, X[i : i + 100]) for i in range(0, 600, 100)])
    np.testing.assert_allclose(_batch_contributions(trees, X), walked, atol=1e-12)
    np.testing.assert_allclose(
        trees.base_value + walked.sum(axis=1), booster.decision_function(X), atol=1e-9
    )


def test_blend_reasons_are_the_weighted_mean_of_its_members_reasons(
    blend: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    from models.explain import _attribution

    people = risk_data[2].head(300)
    pipeline = risk_pipeline(blend)
    average = pipeline.named_steps["model"]
    X = pipeline.named_steps["encode"].transform(people)
    members = [_attribution(member).contributions(X) for member in average.estimators_]
    expected = sum(w * c for w, c in zip(average.weights_, members, strict=True))
    np.testing.assert_allclose(explain(blend, people).contributions, expected, atol=1e-12)
