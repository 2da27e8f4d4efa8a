"""The plug-in learner and the truth-free choice between it and the DR final stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.schema import DEFAULT_FEATURES, PROGRAMMES, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from models.contract.artifact import skops_trusted_types
from models.pathway_forest import compile_forest
from models.pathway_policy import select_learner
from models.pathway_stages import plugin_risks
from models.pathways import PathwayEffectModel

Cohort = tuple[pd.DataFrame, pd.DataFrame]


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    data, _ = generate_cohort(SynthConfig(rows=8_000, seed=43))
    return data.iloc[:6_000], data.iloc[6_000:]


def _fit(train: pd.DataFrame, learner: str) -> PathwayEffectModel:
    model = PathwayEffectModel(DEFAULT_FEATURES, max_iter=40, learner=learner)
    return model.fit(train, train[TARGET_FIELD].to_numpy(dtype=int))


@pytest.fixture(scope="module")
def plugin(cohort: Cohort) -> PathwayEffectModel:
    return _fit(cohort[0], "plugin")


def _two_learners(
    n: int, informative: str
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Two learners' estimates of two programmes: one tracks the truth, the other is noise."""
    rng = np.random.default_rng(5)
    first_better = np.arange(n) % 2 == 0
    truth = np.column_stack([np.where(first_better, 0.3, 0.0), np.where(first_better, 0.0, 0.3)])
    noise = rng.uniform(0.0, 0.3, size=(n, 2))
    confident = np.zeros((n, 2), dtype=bool)
    other = "dr" if informative == "plugin" else "plugin"
    return {informative: (truth, confident), other: (noise, confident)}, truth


@pytest.mark.parametrize("informative", ["plugin", "dr"])
def test_the_learner_whose_picks_score_better_out_of_fold_is_chosen(informative: str) -> None:
    n = 4_000
    candidates, truth = _two_learners(n, informative)
    pseudo = truth + np.random.default_rng(6).normal(0.0, 1.0, size=(n, 2))
    open_to = np.ones((n, 2), dtype=bool)
    learner, gate, margin, values = select_learner(candidates, open_to, pseudo, default=0)
    assert learner == informative
    assert not gate and margin < float("inf")
    assert values[f"{informative}:no_gate/0.0"] > values[f"{learner}:gate/inf"]


def test_without_a_clear_gain_the_first_learner_and_the_default_are_kept() -> None:
    n = 4_000
    candidates, _ = _two_learners(n, "plugin")
    pseudo = np.random.default_rng(7).normal(0.0, 1.0, size=(n, 2))  # nothing works
    open_to = np.ones((n, 2), dtype=bool)
    learner, gate, margin, _ = select_learner(candidates, open_to, pseudo, default=0)
    assert (learner, gate, margin) == ("plugin", True, float("inf"))


def test_the_plugin_is_its_boosters_risk_without_minus_with_the_programme_alone(
    cohort: Cohort, plugin: PathwayEffectModel
) -> None:
    test = cohort[1]
    x = plugin.encoder_.transform(test)
    estimates, risk_without = plugin.estimate_with_risk(test)
    booster = plugin.plugin_model_
    assert booster is not None and plugin.risk_models() == (booster,)
    none = np.zeros((len(x), len(PROGRAMMES)))
    np.testing.assert_array_equal(
        risk_without, booster.predict_proba(np.column_stack([x, none]))[:, 1]
    )
    for j in range(len(PROGRAMMES)):
        alone = none.copy()
        alone[:, j] = 1.0
        with_j = booster.predict_proba(np.column_stack([x, alone]))[:, 1]
        np.testing.assert_allclose(estimates.effect[:, j], risk_without - with_j, atol=1e-15)
    effect = estimates.effect
    assert plugin.learner_ == "plugin" and plugin.effect_models_ == {}
    # It is not a constant: the outcome models see who benefits more.
    assert (effect.std(axis=0) > 0).all()


def test_stacked_readings_predict_what_each_reading_predicts(plugin: PathwayEffectModel) -> None:
    x = np.random.default_rng(2).normal(size=(7, len(plugin.encoder_.features_)))
    baseline, alone = plugin_risks(plugin.risk_models(), x)
    np.testing.assert_array_equal(baseline, plugin.baseline_risk(x))
    assert alone.shape == (7, len(PROGRAMMES))


def test_the_forest_serves_the_plugins_estimates_bit_for_bit(
    cohort: Cohort, plugin: PathwayEffectModel
) -> None:
    test = cohort[1]
    expected = plugin.estimate(test)
    forest = compile_forest(plugin)
    x = plugin.encoder_.transform(test)
    walked = forest.predict(x)
    ages = test["age"].to_numpy(dtype=np.float64)
    got = plugin.estimates_from(walked.relative, walked.baseline, walked.propensity, ages)
    np.testing.assert_array_equal(got.effect, expected.effect)
    np.testing.assert_array_equal(got.recommended, expected.recommended)
    np.testing.assert_array_equal(walked.baseline, plugin.baseline_risk(x))
    one = forest.predict(x[3:4])
    np.testing.assert_array_equal(one.relative[0], walked.relative[3])


def test_auto_serves_exactly_what_the_chosen_learner_serves_alone(cohort: Cohort) -> None:
    train, test = cohort
    auto = _fit(train, "auto")
    alone = _fit(train, auto.learner_)
    assert set(auto.selection_) == {
        f"{learner}:{rule}" for learner in ("dr", "plugin") for rule in alone.selection_
    }
    assert (auto.gate_, auto.switch_margin_) == (alone.gate_, alone.switch_margin_)
    ours, theirs = auto.estimate(test), alone.estimate(test)
    for name in ("effect", "interval_low", "interval_high", "recommended"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))


def test_a_plugin_model_holds_only_trusted_types(plugin: PathwayEffectModel) -> None:
    assert "models.pathways.PathwayEffectModel" in skops_trusted_types(plugin)


def test_a_dr_model_keeps_no_plugin_and_serves_the_outcome_models_risk(cohort: Cohort) -> None:
    dr = _fit(cohort[0], "dr")
    assert dr.learner_ == "dr" and dr.plugin_model_ is None
    assert dr.risk_models() == dr.outcome_models_


def test_auto_with_another_contrast_is_the_dr_final_stage(cohort: Cohort) -> None:
    train = cohort[0]
    model = PathwayEffectModel(DEFAULT_FEATURES, max_iter=40, contrast="observed", learner="auto")
    model.fit(train, train[TARGET_FIELD].to_numpy(dtype=int))
    assert model.learner_ == "dr"
    assert all(":" not in name for name in model.selection_)


def test_no_true_effects_means_no_confident_plugin_recommendation() -> None:
    cohort, _ = generate_cohort(SynthConfig(rows=15_000, seed=41, effect_scale=0.0))
    train, test = cohort.iloc[:10_000], cohort.iloc[10_000:]
    estimates = _fit(train, "plugin").estimate(test)
    assert estimates.recommended.any(axis=1).mean() < 0.05


@pytest.mark.parametrize(
    ("settings", "match"),
    [({"learner": "s"}, "learner must be"), ({"learner": "plugin", "contrast": "mix"}, "alone")],
)
def test_unknown_learners_and_contrasts_without_the_plugin_are_refused(
    cohort: Cohort, settings: dict[str, str], match: str
) -> None:
    model = PathwayEffectModel(DEFAULT_FEATURES, **settings)  # type: ignore[arg-type]
    train = cohort[0]
    with pytest.raises(ValueError, match=match):
        model.fit(train, train[TARGET_FIELD].to_numpy(dtype=int))
