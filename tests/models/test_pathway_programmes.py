"""The programmes' facts: a referral column and needs items each, and who may be referred."""

from __future__ import annotations

import numpy as np

from data.schema import ASSESSMENT_FIELDS, PRINCES_TRUST, PROGRAMMES
from models.pathway_programmes import PROGRAMME_NEEDS, REFERRAL_COLUMNS, eligible


def test_every_programme_has_its_referral_column_and_assessed_needs() -> None:
    assert tuple(f"referred_{p}" for p in PROGRAMMES) == REFERRAL_COLUMNS
    assert set(PROGRAMME_NEEDS) == set(PROGRAMMES)
    assessed = {spec.name for spec in ASSESSMENT_FIELDS}
    for programme, items in PROGRAMME_NEEDS.items():
        assert items and set(items) <= assessed, programme
    assert PROGRAMME_NEEDS[PRINCES_TRUST] == PROGRAMME_NEEDS["education_employment"]


def test_only_the_princes_trust_is_closed_outside_ages_16_to_25() -> None:
    ages = np.array([15.0, 16.0, 25.0, 26.0, 60.0])
    assert eligible(PRINCES_TRUST, ages).tolist() == [False, True, True, False, False]
    for programme in PROGRAMMES:
        if programme != PRINCES_TRUST:
            assert eligible(programme, ages).all(), programme
