"""The assessment encoder: schema category codes, NaN for missing, and the schema's directions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.errors import ForbiddenFeatureError, UnknownFieldError
from data.schema import FIELDS_BY_NAME
from models.encoding import (
    AssessmentEncoder,
    categorical_mask,
    monotonic_constraints,
    to_model_input,
)

FEATURES = ("age", "charge_degree", "drug_misuse")


def _people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30, None, 45],
            "charge_degree": ["misdemeanour", "felony", "unheard-of"],
            "drug_misuse": [2, None, 0],
            "unused": ["x", "y", "z"],
        }
    )


def test_categories_get_their_schema_code_and_missing_stays_nan() -> None:
    out = AssessmentEncoder(FEATURES).fit(_people()).transform(_people())
    order = list(FIELDS_BY_NAME["charge_degree"].categories)
    assert out.dtype == np.float64 and out.shape == (3, 3)
    np.testing.assert_array_equal(out[:, 0], [30.0, np.nan, 45.0])
    assert out[0, 1] == order.index("misdemeanour") and out[1, 1] == order.index("felony")
    assert np.isnan(out[2, 1])  # an unknown category counts as missing
    np.testing.assert_array_equal(out[:, 2], [2.0, np.nan, 0.0])


def test_a_categorical_column_in_schema_order_gives_the_same_codes() -> None:
    people = _people().head(2)
    as_category = people.assign(
        charge_degree=pd.Categorical(
            people["charge_degree"], categories=FIELDS_BY_NAME["charge_degree"].categories
        )
    )
    encoder = AssessmentEncoder(FEATURES).fit(people)
    np.testing.assert_array_equal(encoder.transform(as_category), encoder.transform(people))


def test_feature_names_out_are_the_features() -> None:
    encoder = AssessmentEncoder(FEATURES).fit(_people())
    assert encoder.get_feature_names_out().tolist() == list(FEATURES)


@pytest.mark.parametrize(
    ("features", "frame", "error", "message"),
    [
        ((), _people(), ValueError, "at least one feature"),
        (("age", "shoe_size"), _people(), UnknownFieldError, "shoe_size"),
        (("age", "ethnicity"), _people(), ForbiddenFeatureError, "ethnicity"),
        (FEATURES, _people().drop(columns="age"), ValueError, "lacks feature columns"),
        (FEATURES, _people().to_numpy(), TypeError, "pandas DataFrame"),
    ],
)
def test_bad_features_or_tables_are_refused(
    features: tuple[str, ...], frame: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AssessmentEncoder(features).fit(frame)  # type: ignore[arg-type]


def test_masks_and_directions_come_from_the_schema() -> None:
    assert categorical_mask(FEATURES).tolist() == [False, True, False]
    assert monotonic_constraints(FEATURES).tolist() == [-1, 0, 1]


def test_model_input_has_floats_and_plain_strings() -> None:
    frame = to_model_input(_people(), FEATURES)
    assert list(frame.columns) == list(FEATURES)
    assert frame["age"].dtype == np.float64 and np.isnan(frame["age"].iloc[1])
    assert frame["charge_degree"].tolist() == ["misdemeanour", "felony", "unheard-of"]
    people = _people().assign(charge_degree=["felony", None, "felony"])
    assert to_model_input(people, FEATURES)["charge_degree"].iloc[1] is None
