"""Turn an assessment table into the numeric matrix the estimators need.

Categories become their code in the schema's category list (so the code of a
category never depends on which categories a sample happens to hold); every
missing value, including a needs item "not assessed", stays ``NaN`` for the
estimator to treat as its own state, never as zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from data.schema import FIELDS_BY_NAME, Kind, check_feature_names


class AssessmentEncoder(TransformerMixin, BaseEstimator):
    """Select the model's features from an assessment table, as floats.

    Parameters
    ----------
    features
        Schema field names, in the order the estimator will see them.

    Attributes
    ----------
    features_ : list of str
        The features, checked against the schema.
    categories_ : dict of str to list of str
        Category list of each categorical feature (code = position).
    """

    def __init__(self, features: tuple[str, ...] = ()) -> None:
        self.features = features

    def fit(self, X: pd.DataFrame, y: object = None) -> AssessmentEncoder:
        """Check the feature list and that ``X`` holds every feature."""
        if not self.features:
            raise ValueError("AssessmentEncoder needs at least one feature")
        check_feature_names(list(self.features))
        self._check_columns(X)
        self.features_ = list(self.features)
        self.categories_ = {
            name: list(FIELDS_BY_NAME[name].categories)
            for name in self.features_
            if FIELDS_BY_NAME[name].kind is Kind.CATEGORY
        }
        return self

    def _check_columns(self, X: pd.DataFrame) -> None:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("AssessmentEncoder expects a pandas DataFrame of assessments")
        absent = [name for name in self.features if name not in X.columns]
        if absent:
            raise ValueError(f"assessment table lacks feature columns: {absent}")

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Return the features as a float matrix, ``NaN`` where missing."""
        check_is_fitted(self)
        self._check_columns(X)
        out = np.empty((len(X), len(self.features_)), dtype=np.float64)
        for j, name in enumerate(self.features_):
            column = X[name]
            if name in self.categories_:
                categories = self.categories_[name]
                if (
                    isinstance(column.dtype, pd.CategoricalDtype)
                    and list(column.cat.categories) == categories
                ):
                    codes = column.cat.codes.to_numpy()
                else:
                    # An unknown category is treated like a missing one.
                    known = column.where(column.isin(categories))
                    codes = pd.Categorical(known, categories=categories).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Return the feature names, one per output column."""
        check_is_fitted(self)
        return np.asarray(self.features_, dtype=object)


def categorical_mask(features: tuple[str, ...]) -> np.ndarray:
    """Return which of ``features`` the encoder turns into category codes."""
    return np.array([FIELDS_BY_NAME[name].kind is Kind.CATEGORY for name in features], dtype=bool)


def monotonic_constraints(features: tuple[str, ...]) -> np.ndarray:
    """Return each feature's established risk direction (+1, -1 or 0) from the schema."""
    return np.array([FIELDS_BY_NAME[name].risk_direction for name in features], dtype=int)


def to_model_input(assessments: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    """Return ``features`` of ``assessments`` in plain types a model signature can state.

    Numbers become floats (missing: NaN) and categories plain strings
    (missing: None): the types a case system sends as JSON.
    """
    columns: dict[str, pd.Series] = {}
    for name in features:
        column = assessments[name]
        if FIELDS_BY_NAME[name].kind is Kind.CATEGORY:
            columns[name] = column.astype(object).where(column.notna(), None)
        else:
            columns[name] = pd.Series(
                column.to_numpy(dtype=np.float64, na_value=np.nan), index=column.index
            )
    return pd.DataFrame(columns, index=assessments.index)
