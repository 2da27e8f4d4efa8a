from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from data.schema import TARGET_FIELD
from models.calibration import ScoreCalibratedClassifier
from models.encoding import AssessmentEncoder, to_model_input
from models.explain import risk_pipeline
from tests.models.conftest import FEATURES

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
