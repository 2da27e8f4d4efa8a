from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from data.schema import TARGET_FIELD
from models.calibration import ScoreCalibratedClassifier
from models.encoding import AssessmentEncoder, to_model_input
from models.explain import risk_pipeline
from models.risk import CrossFitted, ScorecardSettings, build_risk_model, cross_fit
from tests.support.risk_models import FEATURES

Data = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


def _risk(model: ScoreCalibratedClassifier, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(frame)[:, 1]


@pytest.mark.parametrize("family", ["scorecard", "booster"])
def test_models_discriminate_and_are_calibrated(
    family: str, risk_data: Data, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(family)
    test = risk_data[2]
    p = _risk(model, test)
    y = test[TARGET_FIELD].to_numpy(dtype=int)
    assert roc_auc_score(y, p) > 0.68
    assert p.mean() == pytest.approx(y.mean(), abs=0.03)


def _with(frame: pd.DataFrame, **values: object) -> pd.DataFrame:
    changed = frame.copy()
    for name, value in values.items():
        changed[name] = pd.Series([value] * len(changed), index=changed.index).astype(
            changed[name].dtype
        )
    return changed


def _never_lower(model: ScoreCalibratedClassifier, variants: list[pd.DataFrame]) -> None:
    """Both the probability and the model's score never fall along ``variants``."""
    probabilities = [_risk(model, v) for v in variants]
    scores = [risk_pipeline(model).decision_function(v) for v in variants]
    for series in (probabilities, scores):
        assert all(np.all(b >= a - 1e-12) for a, b in itertools.pairwise(series))
    assert np.all(scores[-1] > scores[0])  # the driver really moves the score


def test_more_previous_sanctions_never_lowers_the_scorecard_score(
    scorecard: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    # Juvenile sanctions at 0 keep every count we try consistent.
    people = _with(risk_data[2].head(300), juvenile_sanctions=0)
    _never_lower(scorecard, [_with(people, total_sanctions=n) for n in (0, 1, 3, 8, 20, 60)])


def test_a_drug_need_never_lowers_the_scorecard_score(
    scorecard: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    people = risk_data[2].head(300)
    _never_lower(scorecard, [_with(people, drug_misuse=level) for level in (0, 1, 2)])


def test_older_people_score_lower_all_else_equal(
    booster: ScoreCalibratedClassifier, scorecard: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    people = risk_data[2].head(200)
    people = _with(people, age_first_sanction=16)
    for model in (booster, scorecard):
        assert np.all(_risk(model, _with(people, age=20)) >= _risk(model, _with(people, age=50)))


def test_not_assessed_is_not_the_same_as_no_problems(
    scorecard: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    people = risk_data[2].head(50)
    score = risk_pipeline(scorecard).decision_function
    missing = score(_with(people, drug_misuse=pd.NA))
    none = score(_with(people, drug_misuse=0))
    assert np.all(missing > none)  # unscreened people carry the cohort's typical drug risk


def test_plain_json_style_input_scores_like_canonical_input(
    scorecard: ScoreCalibratedClassifier, risk_data: Data
) -> None:
    people = risk_data[2].head(100)
    plain = to_model_input(people, FEATURES)
    assert plain["offence_category"].dtype == object
    np.testing.assert_allclose(_risk(scorecard, plain), _risk(scorecard, people))


def test_encoder_refuses_audit_only_feature() -> None:
    from data.errors import ForbiddenFeatureError

    frame = pd.DataFrame({"age": [30], "ethnicity": ["white"]})
    with pytest.raises(ForbiddenFeatureError):
        AssessmentEncoder(("age", "ethnicity")).fit(frame)


def test_encoder_names_absent_columns() -> None:
    with pytest.raises(ValueError, match="total_sanctions"):
        AssessmentEncoder(("age", "total_sanctions")).fit(pd.DataFrame({"age": [30]}))


def test_encoder_uses_schema_category_codes(risk_data: Data) -> None:
    frame = pd.DataFrame({"offence_category": ["theft", None, "violence", "arson"]})
    encoded = AssessmentEncoder(("offence_category",)).fit(frame).transform(frame)
    assert encoded[0, 0] == 3 and encoded[2, 0] == 0
    assert np.isnan(encoded[1, 0]) and np.isnan(encoded[3, 0])


def _cross_fitted(rows: pd.DataFrame, folds: int = 3) -> CrossFitted:
    return cross_fit(
        FEATURES, ScorecardSettings(max_bins=16), rows, rows[TARGET_FIELD], folds=folds, seed=4
    )


@pytest.fixture(scope="module")
def cross_fitted(risk_data: Data) -> CrossFitted:
    train, calibration, _ = risk_data
    return _cross_fitted(pd.concat([train, calibration]))


def test_cross_fitting_learns_from_every_row_and_scores_each_out_of_fold(
    cross_fitted: CrossFitted, risk_data: Data
) -> None:
    rows = pd.concat(risk_data[:2])
    y = rows[TARGET_FIELD].to_numpy(dtype=int)
    # The served pipeline is the one fitted on all rows ...
    everyone = build_risk_model(FEATURES, ScorecardSettings(max_bins=16)).fit(rows, y)
    served = risk_pipeline(cross_fitted.model)
    np.testing.assert_allclose(served.decision_function(rows), everyone.decision_function(rows))
    # ... while each row's calibration score comes from a model that never saw it.
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=4)
    learn, held = next(folds.split(np.zeros((len(y), 1)), y))
    fold_model = build_risk_model(FEATURES, ScorecardSettings(max_bins=16)).fit(
        rows.iloc[learn], y[learn]
    )
    np.testing.assert_allclose(
        cross_fitted.out_of_fold_score[held], fold_model.decision_function(rows.iloc[held])
    )
    assert not np.allclose(cross_fitted.out_of_fold_score, everyone.decision_function(rows))
    np.testing.assert_allclose(
        cross_fitted.out_of_fold_probability,
        cross_fitted.model.calibrate_scores(cross_fitted.out_of_fold_score),
    )


def test_cross_fitted_probabilities_are_calibrated_on_new_people(
    cross_fitted: CrossFitted, risk_data: Data
) -> None:
    test = risk_data[2]
    y = test[TARGET_FIELD].to_numpy(dtype=int)
    p = _risk(cross_fitted.model, test)
    assert roc_auc_score(y, p) > 0.68
    # 10 equal-mass bins of 600 people: noise alone gives about 0.015.
    order = np.argsort(p)
    ece = sum(abs(p[b].mean() - y[b].mean()) * b.size for b in np.array_split(order, 10)) / y.size
    assert ece < 0.03
    assert p.mean() == pytest.approx(y.mean(), abs=0.02)


def test_cross_fitting_needs_two_folds(risk_data: Data) -> None:
    with pytest.raises(ValueError, match="at least 2 folds"):
        _cross_fitted(risk_data[0].head(500), folds=1)
