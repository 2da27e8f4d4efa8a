from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from benchmarks.support.configs import small_config
from data.synthetic import SynthConfig, generate_cohort
from models.risk import ScorecardSettings
from pipeline.jobs import Splits, split_frame
from pipeline.risk_families import (
    FamilyFit,
    FamilyResult,
    RecordedFamily,
    audited_groups,
    choice_metrics,
    choice_rows,
    choose_family,
    family_table,
    fit_family,
)

#: The job config the fixture's family is fitted under: the suite's small one, scorecard only.
CONFIG = small_config(models=(ScorecardSettings(),))


@pytest.fixture(scope="module")
def fitted() -> tuple[Splits, FamilyFit]:
    frame, _ = generate_cohort(SynthConfig(rows=2_000, seed=4))
    splits = split_frame(frame, CONFIG)
    lines: list[str] = []
    fit = fit_family(CONFIG, ScorecardSettings(), splits, lines.append)
    assert lines[0] == "  scorecard: fitting on 1,200 rows ..."
    return splits, fit


def test_a_fitted_family_holds_out_of_sample_probabilities_and_its_evaluation(
    fitted: tuple[Splits, FamilyFit],
) -> None:
    splits, fit = fitted
    assert fit.family == "scorecard"
    assert fit.choice_probability.shape == (len(splits.calibration),)
    np.testing.assert_allclose(fit.test_probability, fit.model.predict_proba(splits.test)[:, 1])
    y = splits.calibration["reoffended_12m"].to_numpy(dtype=int)
    assert fit.selection_roc_auc == pytest.approx(roc_auc_score(y, fit.choice_probability))
    assert fit.choice_metrics == {"calibration_split_roc_auc": fit.selection_roc_auc}
    assert 0.5 < fit.evaluation.headline["roc_auc"] < 1
    assert {"feature"} <= set(fit.effects.columns)
    result = fit.result("run-1")
    assert (result.run_id, result.test) == ("run-1", fit.evaluation.headline)


def test_cross_fitted_choice_metrics_add_the_out_of_fold_calibration_figures() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 2_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    auc, metrics = choice_metrics(y, p, cross_fitted=True, seed=0)
    assert auc == pytest.approx(roc_auc_score(y, p)) == metrics["out_of_fold_roc_auc"]
    assert set(metrics) == {
        "out_of_fold_roc_auc",
        "out_of_fold_ece",
        "out_of_fold_ece_debiased",
        "out_of_fold_ece_noise_floor",
    }
    assert 0 < metrics["out_of_fold_ece_noise_floor"] < 0.05


def test_choices_are_made_on_the_calibration_split_or_the_cross_fitted_training_rows() -> None:
    train, calibration, test = (pd.DataFrame({"x": [i]}) for i in range(3))
    splits = Splits(train, calibration, test)
    assert choice_rows(splits, cross_fitted=False) is calibration
    assert choice_rows(splits, cross_fitted=True) is train


def test_only_recorded_attributes_are_audited() -> None:
    frame = pd.DataFrame({"sex": ["female", "male"], "ethnicity": [None, None]})
    groups = audited_groups(frame, ("sex", "ethnicity"))
    assert list(groups) == ["sex"] and groups["sex"].dtype == object


def test_the_best_selection_auc_is_chosen_and_the_first_among_equals(
    fitted: tuple[Splits, FamilyFit],
) -> None:
    splits, fit = fitted
    results = [fit.result(f"run-{i}") for i in range(3)]
    worse = RecordedFamily(fit, _with_auc(results[0], 0.6), "uri-0")
    best = RecordedFamily(fit, _with_auc(results[1], 0.7), "uri-1")
    tie = RecordedFamily(fit, _with_auc(results[2], 0.7), "uri-2")
    y_test = splits.test["reoffended_12m"].to_numpy(dtype=int)
    selection = choose_family([worse, best, tie], y_test, seed=0)
    assert selection.chosen is best
    assert [r.run_id for r in selection.results] == ["run-0", "run-1", "run-2"]
    assert 0 < selection.ece_noise_floor < 0.2 and 0 <= selection.ece_noise_p <= 1
    table = family_table(selection)
    assert table["selection_roc_auc"].tolist() == [0.6, 0.7, 0.7]
    assert list(table.columns) == [
        "model",
        "selection_roc_auc",
        "roc_auc",
        "roc_auc_ci_low",
        "roc_auc_ci_high",
        "ece",
        "brier",
        "fit_seconds",
    ]


def _with_auc(result: FamilyResult, auc: float) -> FamilyResult:
    return replace(result, selection_roc_auc=auc)
