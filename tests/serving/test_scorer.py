from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from data.schema import FIELDS_BY_NAME, TARGET_FIELD, make_assessment_model
from data.synthetic import SynthConfig, generate_cohort
from models.bands import RiskBands
from models.calibration import CalibrationMethod, ScoreCalibratedClassifier
from models.explain import explain
from models.risk import (
    AverageSettings,
    BoostingSettings,
    ScorecardSettings,
    build_risk_model,
    calibrate,
)
from pipeline.tracking import Tracker
from serving.registry_loader import LoadedModel, load_model
from serving.scorer import _FEW_ROWS, Scorer, _calibration_map
from serving.settings import Settings


def validated(items: list[dict[str, Any]]) -> list[Any]:
    model = make_assessment_model()
    return [model.model_validate(item) for item in items]


def served_model_and_items(
    settings: Settings, assessments: list[dict[str, Any]]
) -> tuple[LoadedModel, list[Any]]:
    """Return the champion as the service loads it, and ``assessments`` validated by its schema."""
    return load_model(settings), validated(assessments)


def as_frame(items: list[Any]) -> pd.DataFrame:
    return pd.DataFrame([item.model_dump() for item in items])


def fitted_on_a_cohort(
    features: tuple[str, ...],
    settings: BoostingSettings | AverageSettings,
    rows: tuple[int, int, int],
    seed: int,
) -> tuple[Any, pd.DataFrame]:
    """Fit and calibrate a risk model on a synthetic cohort; return it and the held-out rows.

    ``rows`` are the fitting, calibration and held-out rows, in that order.
    """
    n_fit, n_cal, n_test = rows
    cohort, _ = generate_cohort(SynthConfig(rows=n_fit + n_cal + n_test, seed=seed))
    fit, cal = cohort.iloc[:n_fit], cohort.iloc[n_fit : n_fit + n_cal]
    pipeline = build_risk_model(features, settings)
    model = calibrate(pipeline.fit(fit, fit[TARGET_FIELD].astype(int)), cal, cal[TARGET_FIELD])
    return model, cohort.iloc[n_fit + n_cal :]


def assessments_of(rows: pd.DataFrame, features: tuple[str, ...]) -> list[dict[str, Any]]:
    """Return the rows as request assessments of ``features``, missing values as null."""
    return [
        {"subject_ref": f"r{i}"}
        | {name: None if pd.isna(value) else _json_value(value) for name, value in row.items()}
        for i, (_, row) in enumerate(rows[list(features)].iterrows())
    ]


def _json_value(value: Any) -> Any:
    """A cohort value as a JSON request carries it: text, a whole number or a real number."""
    if isinstance(value, str):
        return value
    return int(value) if float(value).is_integer() else float(value)


def test_scores_equal_predict_proba_of_the_registered_model(
    settings: Settings, cohort_assessments: list[dict[str, Any]]
) -> None:
    loaded, items = served_model_and_items(settings, cohort_assessments)
    scores = loaded.scorer.score(items)

    # The registered model as any MLflow user would load it, scored the slow way.
    with Tracker(settings.resolved_tracking_uri()).activate():
        registered = mlflow.sklearn.load_model(f"models:/desist-risk/{loaded.version}")
    reference = registered.predict_proba(as_frame(items))[:, 1]
    served = np.array([s["risk_probability"] for s in scores])
    np.testing.assert_array_equal(served, reference)
    assert [s["subject_ref"] for s in scores] == [i["subject_ref"] for i in cohort_assessments]
    bands = RiskBands(cutoffs=(0.3, 0.5, 0.7)).band_names(reference)
    assert [s["risk_band"] for s in scores] == list(bands)


def test_reasons_are_the_largest_contributions_in_order(
    settings: Settings, cohort_assessments: list[dict[str, Any]]
) -> None:
    loaded, items = served_model_and_items(settings, cohort_assessments[:50])
    scores = loaded.scorer.score(items)
    reference = explain(loaded.scorer.model, as_frame(items))
    for i, score in enumerate(scores):
        reasons = score["reasons"]
        given = np.array([getattr(items[i], f) is not None for f in reference.features])
        assert len(reasons) == min(settings.top_reasons, given.sum())
        sizes = [abs(r["contribution"]) for r in reasons]
        assert sizes == sorted(sizes, reverse=True)
        # The largest among the fields assessed: a field not assessed is never a reason.
        assert sizes[0] == pytest.approx(np.abs(reference.contributions[i])[given].max())
        for reason in reasons:
            assert reason["direction"] == ("raises" if reason["contribution"] > 0 else "lowers")
            assert reason["value"] is not None
            assert reason["value"] == getattr(items[i], reason["feature"])


@pytest.mark.parametrize(
    ("settings", "method"),
    [
        (BoostingSettings(max_iter=30), "tree-path"),
        (
            AverageSettings(members=(ScorecardSettings(), BoostingSettings(max_iter=30))),
            "weighted mean of the members' attributions",
        ),
    ],
    ids=["boosting", "average"],
)
def test_tree_models_score_equal_predict_proba(
    settings: BoostingSettings | AverageSettings, method: str
) -> None:
    features = ("age", "total_sanctions", "months_offence_free", "offence_category", "drug_misuse")
    model, test = fitted_on_a_cohort(features, settings, rows=(2_000, 600, 400), seed=8)
    scorer = Scorer(model, RiskBands(), top_reasons=2)
    items = validated(assessments_of(test, features))
    served = np.array([s["risk_probability"] for s in scorer.score(items)])
    # Summed from the tree-path attributions: equal to float rounding, not bit for bit.
    np.testing.assert_allclose(served, model.predict_proba(as_frame(items))[:, 1], rtol=1e-12)
    assert scorer.method.startswith(method)


def test_the_matrix_is_the_encoders_own(
    settings: Settings, cohort_assessments: list[dict[str, Any]]
) -> None:
    loaded, items = served_model_and_items(settings, cohort_assessments)
    encoder = loaded.scorer.model.estimator.named_steps["encode"]
    expected = encoder.transform(as_frame(items))
    # Not assessed fields are NaN in the same places, codes and numbers equal bit for bit.
    np.testing.assert_array_equal(loaded.scorer.matrix(items), expected)
    assert np.isnan(expected).any() and loaded.scorer.matrix([]).shape == (0, expected.shape[1])


def test_a_large_batch_scores_the_same_on_several_threads() -> None:
    features = ("age", "total_sanctions", "months_offence_free", "offence_category")
    settings = BoostingSettings(max_iter=20)
    model, test = fitted_on_a_cohort(features, settings, rows=(1_500, 500, 900), seed=9)
    items = validated(assessments_of(test, features))  # 900 rows: the walk is shared from 400 on
    one = Scorer(model, RiskBands(), top_reasons=2).score(items)
    # Each thread walks its own rows: the same scores and reasons, bit for bit, in order.
    assert Scorer(model, RiskBands(), top_reasons=2, threads=2).score(items) == one
    assert Scorer(model, RiskBands(), top_reasons=2, threads=3).score(items) == one


def test_a_few_rows_score_as_they_do_in_a_large_batch(
    settings: Settings, cohort_assessments: list[dict[str, Any]]
) -> None:
    # Up to _FEW_ROWS rows, probabilities, bands and reasons are picked in plain Python;
    # the same numbers, bit for bit, as the array path of a larger batch.
    loaded, items = served_model_and_items(settings, cohort_assessments[:60])
    in_batch = loaded.scorer.score(items)
    assert len(items) > _FEW_ROWS
    alone = [score for item in items for score in loaded.scorer.score([item])]
    assert alone == in_batch
    few = loaded.scorer.score(items[:_FEW_ROWS])
    assert few == in_batch[:_FEW_ROWS]


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_the_calibration_map_is_the_models_own(method: CalibrationMethod) -> None:
    features = ("age", "total_sanctions", "offence_category")
    model, _ = fitted_on_a_cohort(
        features, BoostingSettings(max_iter=10), rows=(1_500, 500, 50), seed=4
    )
    rng = np.random.default_rng(3)
    score = rng.normal(size=2_000)
    outcome = (rng.random(2_000) < 1 / (1 + np.exp(-score))).astype(float)
    calibrated = ScoreCalibratedClassifier(model.estimator, method=method).fit_scores(
        score, outcome
    )
    grid = np.linspace(-6, 6, 241)  # beyond the outermost knots too
    np.testing.assert_array_equal(
        _calibration_map(calibrated)(grid), calibrated.calibrate_scores(grid)
    )
    with pytest.raises(NotFittedError):
        _calibration_map(ScoreCalibratedClassifier(model.estimator, method=method))


def test_a_field_not_assessed_is_never_a_reason_in_a_batch(
    settings: Settings, cohort_assessments: list[dict[str, Any]]
) -> None:
    # Fewer fields assessed than reasons asked for: the reasons are only those assessed,
    # in a batch (the array path) as for one row alone.
    sparse = [
        {name: (None if FIELDS_BY_NAME[name].nullable else value) for name, value in a.items()}
        for a in cohort_assessments[: _FEW_ROWS * 3]
    ]
    loaded, items = served_model_and_items(settings, sparse)
    features = loaded.scorer.features
    scorer = Scorer(loaded.scorer.model, loaded.scorer.bands, top_reasons=len(features) - 1)
    assessed = [[f for f in features if getattr(item, f) is not None] for item in items]
    assert max(len(fields) for fields in assessed) < scorer.top_reasons
    in_batch = scorer.score(items)
    for score, fields in zip(in_batch, assessed, strict=True):
        assert sorted(reason["feature"] for reason in score["reasons"]) == sorted(fields)
    assert in_batch == [score for item in items for score in scorer.score([item])]
