"""The leaf lookup from split outcomes: the leaves scikit-learn's walk reaches, bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from data.schema import TARGET_FIELD
from models import leaf_lookup, tree_paths
from models.calibration import ScoreCalibratedClassifier
from models.explain import risk_pipeline
from models.leaf_lookup import MAX_LOOKUP_SPLITS
from models.risk import BoostingSettings, build_risk_model
from models.tree_paths import (
    BATCH_ROWS,
    _batch_contributions,
    compile_trees,
    tree_path_contributions,
)
from tests.support.risk_models import FEATURES

Data = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


@pytest.mark.parametrize("all_trees_max_rows", [0, 10_000], ids=["tree-by-tree", "all-trees"])
@pytest.mark.parametrize("max_leaf_nodes", [2, 8, 12])
def test_leaves_looked_up_from_split_outcomes_equal_the_compiled_walk_bit_for_bit(
    risk_data: Data, monkeypatch: pytest.MonkeyPatch, max_leaf_nodes: int, all_trees_max_rows: int
) -> None:
    train, _, test = risk_data
    settings = BoostingSettings(max_iter=40, max_leaf_nodes=max_leaf_nodes, min_samples_leaf=20)
    pipeline = build_risk_model(tuple(FEATURES), settings).fit(
        train.head(5_000), train[TARGET_FIELD].head(5_000).astype(int)
    )
    trees = compile_trees(pipeline.named_steps["model"])
    assert trees.leaf_lookup is not None
    # 12 leaves: 11 splits, more bits than a byte holds.
    assert trees.leaf_lookup.code_dtype == (np.uint8 if max_leaf_nodes <= 9 else np.uint16)
    X = pipeline.named_steps["encode"].transform(test.head(1_000))
    X[np.random.default_rng(5).random(X.shape) < 0.2] = np.nan  # missing values go their way
    monkeypatch.setattr(tree_paths, "LOOKUP_MIN_ROWS", 0)  # looked up however few the rows
    monkeypatch.setattr(tree_paths, "LOOKUP_BLOCK_ROWS", 300)  # blocks, the last one short
    monkeypatch.setattr(leaf_lookup, "ALL_TREES_MAX_ROWS", all_trees_max_rows)
    looked_up = _batch_contributions(trees, X)
    walked = _batch_contributions(dataclasses.replace(trees, leaf_lookup=None), X)
    assert looked_up.tobytes() == walked.tobytes()
    np.testing.assert_allclose(
        trees.base_value + looked_up.sum(axis=1),
        pipeline.named_steps["model"].decision_function(X),
        atol=1e-9,
    )


def test_trees_with_too_many_splits_for_a_lookup_are_walked_by_scikit_learn(
    booster: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    pipeline = risk_pipeline(booster)  # 31 leaves a tree at most
    trees = compile_trees(pipeline.named_steps["model"])
    assert trees.leaf_lookup is None
    # A tree of n splits has 2n + 1 nodes: the largest has more splits than a lookup takes.
    largest = max(len(p.nodes) for it in pipeline.named_steps["model"]._predictors for p in it)
    assert (largest - 1) // 2 > MAX_LOOKUP_SPLITS
    people = risk_data[2].head(BATCH_ROWS * 3)
    X = pipeline.named_steps["encode"].transform(people)
    np.testing.assert_allclose(
        trees.base_value + tree_path_contributions(trees, X, threads=2).sum(axis=1),
        pipeline.decision_function(people),
        atol=1e-9,
    )


def test_looked_up_leaves_are_shared_between_threads_only_in_large_batches(
    risk_data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _, test = risk_data
    settings = BoostingSettings(max_iter=30, max_leaf_nodes=8, min_samples_leaf=20)
    pipeline = build_risk_model(tuple(FEATURES), settings).fit(
        train.head(5_000), train[TARGET_FIELD].head(5_000).astype(int)
    )
    trees = compile_trees(pipeline.named_steps["model"])
    assert trees.leaf_lookup is not None
    X = pipeline.named_steps["encode"].transform(test.head(1_000))
    alone = tree_path_contributions(trees, X, threads=1)

    def no_pool(threads: int) -> None:
        raise AssertionError(f"{len(X)} rows shared between {threads} threads")

    # A request's 1,000 rows stay on one thread: a second one would only wait for the GIL.
    with monkeypatch.context() as patch:
        patch.setattr(tree_paths, "_pool", no_pool)
        assert tree_path_contributions(trees, X, threads=2).tobytes() == alone.tobytes()
    # Shared when each thread gets its minimum: the same numbers, bit for bit, in order.
    monkeypatch.setattr(tree_paths, "LOOKUP_THREAD_MIN_ROWS", BATCH_ROWS)
    assert tree_path_contributions(trees, X, threads=3).tobytes() == alone.tobytes()
