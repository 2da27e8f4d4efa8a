"""A valid assessment as a case system sends it, to vary field by field."""

from __future__ import annotations

from typing import Any


def assessment(**changes: Any) -> dict[str, Any]:
    """A valid assessment with a few needs items left out (not assessed)."""
    base: dict[str, Any] = {
        "subject_ref": "case-0001",
        "age": 27,
        "age_first_sanction": 15,
        "total_sanctions": 6,
        "juvenile_sanctions": 2,
        "offence_category": "burglary",
        "custodial_history": 1,
        "months_offence_free": 4.5,
        "drug_misuse": 2,
        "unemployed": 1,
        "procriminal_attitudes": 1,
        "sex": "male",
    }
    return {**base, **changes}
