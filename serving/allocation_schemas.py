"""Request and response bodies of ``POST /v1/pathway-allocations``.

The cohort's assessments are those of the scoring routes (the same schema,
field for field, and the same size check: over the limit, 413 before any
item is validated); the places come beside them, one count per programme.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from data.schema import EXAMPLE_ASSESSMENT, ID_FIELD, PROGRAMMES
from serving.schemas import (
    _EXAMPLE_REQUEST_ID,
    Probability,
    StrictModel,
    VersionedAnswer,
    assessment_batch_model,
    openapi_request_body,
)

#: Most places a request may give one programme (a bound, not a policy: far above any cohort).
MAX_PLACES = 1_000_000

#: The protected characteristics the allocation's shares are given by (audit only, never
#: features: :data:`data.schema.AUDIT_ONLY`); a person who did not state one counts under
#: :data:`NOT_RECORDED`.
SHARE_ATTRIBUTES: tuple[str, ...] = ("ethnicity", "sex")
NOT_RECORDED = "not recorded"


#: Places per programme: a non-negative count for each programme named; a programme left
#: out has no places. An unknown programme is refused (422, naming ``places.<name>``).
_PLACES: dict[str, Any] = {
    # Strict: a whole JSON number, not "3", 2.0 or true.
    programme: (
        int,
        Field(default=0, ge=0, le=MAX_PLACES, strict=True, description=f"Places on {programme}."),
    )
    for programme in PROGRAMMES
}
Places: type[BaseModel] = create_model(
    "Places",
    __config__=ConfigDict(extra="forbid"),
    __doc__="Places per programme; a programme left out has none.",
    **_PLACES,
)

_SECOND = {
    **EXAMPLE_ASSESSMENT,
    ID_FIELD: "case-2024-00418",
    "age": 19,
    "age_first_sanction": 14,
    "unemployed": 1,
    "sex": "female",
}

#: The documented example request: two people, places on two programmes.
EXAMPLE_ALLOCATION_REQUEST: dict[str, Any] = {
    "assessments": [EXAMPLE_ASSESSMENT, _SECOND],
    "places": {"drugs_alcohol": 1, "education_employment": 1},
}

#: What the service answers for it (figures illustrative).
EXAMPLE_ALLOCATION: dict[str, Any] = {
    "model_name": "desist-pathways",
    "model_version": "2",
    "request_id": _EXAMPLE_REQUEST_ID,
    "allocations": [
        {
            "subject_ref": EXAMPLE_ASSESSMENT[ID_FIELD],
            "programme": "drugs_alcohol",
            "expected_reduction": 0.07,
            "risk_without": 0.62,
            "risk_with": 0.55,
            "recommended_with_confidence": True,
        },
        {
            "subject_ref": _SECOND[ID_FIELD],
            "programme": "education_employment",
            "expected_reduction": 0.05,
            "risk_without": 0.48,
            "risk_with": 0.43,
            "recommended_with_confidence": False,
        },
    ],
    "total_expected_reduction": 0.12,
    "places": [
        {"programme": p, "places": EXAMPLE_ALLOCATION_REQUEST["places"].get(p, 0), "filled": f}
        for p, f in zip(PROGRAMMES, (1, 1, 0, 0, 0, 0, 0, 0), strict=True)
    ],
    "shares": {
        "ethnicity": {
            "white": {"cohort_share": 1.0, "allocated_share": 1.0, "allocated_rate": 1.0},
        },
        "sex": {
            "female": {"cohort_share": 0.5, "allocated_share": 0.5, "allocated_rate": 1.0},
            "male": {"cohort_share": 0.5, "allocated_share": 0.5, "allocated_rate": 1.0},
        },
    },
}


@cache
def allocation_request_model(max_people: int) -> type[BaseModel]:
    """Return the body model of ``POST /v1/pathway-allocations`` for a cohort limit.

    Its ``assessments`` field is the scoring routes' own (schema, size check and
    413 above ``max_people``), described for a cohort.
    """
    batch = assessment_batch_model(max_people).model_fields["assessments"]
    assessments = FieldInfo.merge_field_infos(
        batch,
        description=f"The cohort: 1 to {max_people} assessments (DESIST_MAX_ALLOCATION_BATCH), "
        "allocated together; each person allocated a place is audited.",
    )
    model: type[BaseModel] = create_model(
        "PathwayAllocationRequest",
        __config__=ConfigDict(extra="forbid"),
        __doc__="A cohort and the places of each programme to allocate among them.",
        assessments=(batch.annotation, assessments),  # type: ignore[arg-type]
        places=(Places, Field(description="Places per programme; a programme left out has none.")),
    )
    model.max_batch = max_people  # type: ignore[attr-defined]  # read by serving.scoring
    return model


def allocation_request_body(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the OpenAPI ``requestBody`` of ``model`` with the allocation example, and schemas."""
    body, schemas = openapi_request_body(model)
    body["requestBody"]["content"]["application/json"]["example"] = EXAMPLE_ALLOCATION_REQUEST
    return body, schemas


class PersonAllocation(StrictModel):
    """One person's place, or none."""

    subject_ref: str = Field(description="The caller's reference, echoed.")
    programme: str | None = Field(description="The programme placed on; null for none.")
    expected_reduction: float = Field(
        description="The estimated absolute reduction in the person's 12-month re-offending "
        "probability from that referral alone (0 when no place)."
    )
    risk_without: Probability = Field(description="The person's estimated risk with no referral.")
    risk_with: Probability = Field(description="Their risk with the place (risk_without if none).")
    recommended_with_confidence: bool = Field(
        description="Whether the programme is one recommended to this person with confidence; "
        "false for a place left over after the confidence rule's pairs and given to the next "
        "best positive estimate (or for no place)."
    )


class ProgrammePlaces(StrictModel):
    """One programme's places and how many were filled."""

    programme: str
    places: int = Field(description="Places given in the request.")
    filled: int = Field(description="Places allocated (at most ``places``).")


class GroupShare(StrictModel):
    """One group's part in the cohort and in the allocation."""

    cohort_share: float = Field(description="The group's share of the cohort.")
    allocated_share: float = Field(description="The group's share of the places allocated.")
    allocated_rate: float = Field(description="The share of the group allocated a place.")


class PathwayAllocationResponse(VersionedAnswer):
    """A cohort's allocation, in request order, with the model version that made it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_ALLOCATION]})

    request_id: str = Field(description="Quote it to find the audit records of these places.")
    allocations: list[PersonAllocation]
    total_expected_reduction: float = Field(
        description="The sum of the expected reductions: the number of re-offences within 12 "
        "months the allocation is estimated to prevent in this cohort."
    )
    places: list[ProgrammePlaces] = Field(description="Every programme, in schema order.")
    shares: dict[str, dict[str, GroupShare]] = Field(
        description="By ethnicity and by sex (audit-only fields, never features of the model): "
        "each group's share of the cohort and of the places ('not recorded' when not stated)."
    )
