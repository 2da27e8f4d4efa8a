from __future__ import annotations

import pytest

from data.errors import ForbiddenFeatureError, UnknownFieldError
from data.schema import (
    AUDIT_ONLY,
    DEFAULT_FEATURES,
    FIELDS,
    FIELDS_BY_NAME,
    NEED_FIELDS,
    Kind,
    Pathway,
    check_feature_names,
    needs_of,
)


def test_every_pathway_has_at_least_two_needs_items() -> None:
    for pathway in Pathway:
        assert len(needs_of(pathway)) >= 2, pathway


def test_needs_items_are_ordinal_0_to_2_and_may_be_not_assessed() -> None:
    for spec in NEED_FIELDS:
        assert spec.kind is Kind.NEED
        assert (spec.minimum, spec.maximum) == (0, 2)
        assert spec.nullable


def test_every_field_is_typed_with_a_range_or_categories() -> None:
    for spec in FIELDS:
        if spec.kind is Kind.CATEGORY:
            assert spec.categories, spec.name
        elif spec.is_numeric:
            assert spec.minimum is not None and spec.maximum is not None, spec.name
            assert spec.minimum <= spec.maximum
        assert spec.description


def test_protected_characteristics_are_never_default_features() -> None:
    assert set(AUDIT_ONLY) == {"ethnicity", "race", "sex"}
    assert not set(AUDIT_ONLY) & set(DEFAULT_FEATURES)
    assert not FIELDS_BY_NAME["ethnicity"].feature_allowed
    assert not FIELDS_BY_NAME["race"].feature_allowed
    assert FIELDS_BY_NAME["sex"].feature_allowed  # only when a config asks deliberately


@pytest.mark.parametrize(
    "name",
    [
        "ethnicity",
        "race",
        "reoffended_12m",
        "reoffended_24m",
        "incumbent_decile",
        "subject_ref",
        "referred_health",
    ],
)
def test_forbidden_features_are_refused(name: str) -> None:
    with pytest.raises(ForbiddenFeatureError, match=name):
        check_feature_names([*DEFAULT_FEATURES, name])


def test_unknown_feature_is_refused() -> None:
    with pytest.raises(UnknownFieldError, match="shoe_size"):
        check_feature_names(["age", "shoe_size"])


def test_default_features_and_sex_are_accepted() -> None:
    check_feature_names([*DEFAULT_FEATURES, "sex"])
