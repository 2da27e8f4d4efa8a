"""Tree-path attributions: the batch lookup agrees with the walk, and both sum to the log-odds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.schema import TARGET_FIELD
from models import tree_paths
from models.calibration import ScoreCalibratedClassifier
from models.explain import risk_pipeline
from models.risk import BoostingSettings, build_risk_model
from models.tree_paths import (
    BATCH_ROWS,
    _batch_contributions,
    compile_trees,
    tree_path_contributions,
)
from tests.support.risk_models import FEATURES

Data = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


def test_batch_and_single_row_tree_paths_agree(
    booster: ScoreCalibratedClassifier, risk_data: Data
) -> None:
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


def test_grouped_tree_lookup_matches_the_walk_of_each_tree(risk_data: Data) -> None:
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


def test_a_few_rows_walk_the_same_whether_splits_are_decided_first_or_per_step(
    booster: ScoreCalibratedClassifier, risk_data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = risk_pipeline(booster)
    X = pipeline.named_steps["encode"].transform(risk_data[2].head(40))
    X[np.random.default_rng(3).random(X.shape) < 0.2] = np.nan  # missing values go their way
    trees = compile_trees(pipeline.named_steps["model"])
    decided_first = [tree_path_contributions(trees, X[:n]) for n in (1, 2, 5, 40)]
    monkeypatch.setattr(tree_paths, "_EVERY_NODE_LIMIT", 0)
    per_step = [tree_path_contributions(trees, X[:n]) for n in (1, 2, 5, 40)]
    for a, b in zip(decided_first, per_step, strict=True):
        assert a.tobytes() == b.tobytes()
    # Each row alone as in a batch of its own: a row's credits do not depend on its company.
    alone = np.vstack([tree_path_contributions(trees, X[i : i + 1]) for i in range(5)])
    assert alone.tobytes() == decided_first[2].tobytes()
    np.testing.assert_allclose(
        trees.base_value + decided_first[3].sum(axis=1),
        pipeline.named_steps["model"].decision_function(X),
        atol=1e-9,
    )
