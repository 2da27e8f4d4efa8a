"""Request and response bodies of the scoring API.

The assessment itself comes from the canonical schema
(:func:`data.schema.make_assessment_model`); the request wrapping it is
built on first use because its batch limit is a setting.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

from data.schema import EXAMPLE_ASSESSMENT, FIELDS_BY_NAME, ID_FIELD, make_assessment_model
from serving.columnar import ColumnarCheck

BATCH_TOO_LARGE = "batch_too_large"


class StrictModel(BaseModel):
    """A request or response body that refuses fields it does not declare."""

    model_config = ConfigDict(extra="forbid")


class VersionedAnswer(StrictModel):
    """The head of every scoring route's answer: the served model version that gave it."""

    model_name: str
    model_version: str


#: A probability or a risk: from 0 to 1.
Probability = Annotated[float, Field(ge=0, le=1)]
#: The bands of :data:`models.bands.BAND_NAMES`, low to very high (a test keeps them equal).
RiskBand = Literal["low", "medium", "high", "very high"]
#: Whether a reason raises or lowers the risk (:attr:`models.explain.Reason.direction`).
Direction = Literal["raises", "lowers"]
#: Why the offered programme is offered: a personal pick recommended with confidence, a
#: personal pick the model's selection serves ungated, or the best single programme.
OfferBasis = Literal["confident_personal_pick", "personal_pick", "default_programme"]

_EXAMPLE_REQUEST_ID = "3f2b8c1e6a4d4f0e9b7a5c2d1e0f8a6b"

#: What ``POST /v1/risk-scores`` answers for the example assessment (the docs' example).
EXAMPLE_RISK_SCORES: dict[str, Any] = {
    "model_name": "desist-risk",
    "model_version": "3",
    "request_id": _EXAMPLE_REQUEST_ID,
    "scores": [
        {
            "subject_ref": EXAMPLE_ASSESSMENT[ID_FIELD],
            "risk_probability": 0.64,
            "risk_band": "high",
            "reasons": [
                {
                    "feature": name,
                    "value": EXAMPLE_ASSESSMENT[name],
                    "contribution": contribution,
                    "direction": "raises" if contribution > 0 else "lowers",
                }
                for name, contribution in (
                    ("total_sanctions", 0.58),
                    ("drug_misuse", 0.41),
                    ("months_offence_free", 0.27),
                )
            ],
        }
    ],
}

#: What ``POST /v1/pathway-recommendations`` answers for the example assessment.
EXAMPLE_RECOMMENDATIONS: dict[str, Any] = {
    "model_name": "desist-pathways",
    "model_version": "2",
    "request_id": _EXAMPLE_REQUEST_ID,
    "recommendations": [
        {
            "subject_ref": EXAMPLE_ASSESSMENT[ID_FIELD],
            "risk_without": 0.62,
            "offered_programme": "drugs_alcohol",
            "offered_basis": "confident_personal_pick",
            "risk_with_offered": 0.55,
            "recommended": [
                {
                    "programme": "drugs_alcohol",
                    "estimated_reduction": 0.07,
                    "interval_low": 0.03,
                    "interval_high": 0.11,
                    "person_interval_low": 0.03,
                    "person_interval_high": 0.11,
                    "risk_with": 0.55,
                    "needs": ["drug_misuse", "alcohol_misuse"],
                },
                {
                    "programme": "accommodation",
                    "estimated_reduction": 0.05,
                    "interval_low": 0.03,
                    "interval_high": 0.09,
                    "person_interval_low": 0.02,
                    "person_interval_high": 0.08,
                    "risk_with": 0.57,
                    "needs": ["no_settled_accommodation", "unsuitable_accommodation"],
                },
            ],
            "not_recommended": [
                {
                    "programme": "princes_trust",
                    "reason": "not_eligible",
                    "explanation": "for ages 16 to 25; this person is 27",
                },
                {
                    "programme": "finance_debt",
                    "reason": "not_clearly_beneficial",
                    "explanation": "estimated reduction 0.01 (interval -0.03 to 0.05) "
                    "is not clearly above zero",
                },
            ],
        }
    ],
}

#: A refused batch: the 422 answer, worded as the service words it.
EXAMPLE_INVALID_REQUEST: dict[str, Any] = {
    "error": "invalid_request",
    "detail": "2 problem(s) in the request",
    "request_id": _EXAMPLE_REQUEST_ID,
    "violations": [
        {
            "assessment_index": 0,
            "field": "age",
            "reason": FIELDS_BY_NAME["age"].out_of_range_reason(140),
        },
        {
            "assessment_index": 1,
            "field": "offence_category",
            "reason": FIELDS_BY_NAME["offence_category"].unknown_category_reason("arson"),
        },
    ],
    "violation_count": 2,
}


class ReasonOut(StrictModel):
    """One feature's part in a score."""

    feature: str = Field(description="Assessment field.")
    value: int | float | str | None = Field(
        description="The value sent for it; null when not assessed."
    )
    contribution: float = Field(description="Its contribution to the log-odds score.")
    direction: Direction = Field(description="'raises' or 'lowers' the risk.")


class RiskScore(StrictModel):
    """The score of one assessment."""

    subject_ref: str = Field(description="The caller's reference, echoed.")
    risk_probability: float = Field(
        ge=0, le=1, description="Calibrated probability of a new sanction within 12 months."
    )
    risk_band: RiskBand = Field(description="low, medium, high or very high.")
    reasons: list[ReasonOut] = Field(
        description="Features that moved the score most, largest first."
    )


class RiskScoreResponse(VersionedAnswer):
    """Scores of a batch, in request order, with the model version that gave them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_RISK_SCORES]})

    request_id: str = Field(description="Quote it to find the audit records of these scores.")
    scores: list[RiskScore]


class RecommendedProgramme(StrictModel):
    """A programme recommended for one person."""

    programme: str = Field(description="The programme (a resettlement pathway or Prince's Trust).")
    estimated_reduction: float = Field(
        ge=-1,
        le=1,
        description="Estimated absolute reduction in the 12-month re-offending probability "
        "from a referral to this programme alone (0.05 = five percentage points).",
    )
    interval_low: float = Field(
        description="Lower end of the 95% interval of the mean reduction among people "
        "with similar estimates."
    )
    interval_high: float = Field(description="Upper end of that interval.")
    person_interval_low: float = Field(
        description="This person's interval: their own estimate give or take the half-width "
        "of the group interval above, so it always contains the estimate; it says how "
        "precisely people like them are measured, not how far their own effect may differ."
    )
    person_interval_high: float = Field(description="Upper end of the person's interval.")
    risk_with: float = Field(
        ge=0,
        le=1,
        description="The person's estimated 12-month re-offending probability with a referral "
        "to this programme alone (risk_without minus the estimated reduction, at least 0).",
    )
    needs: list[str] = Field(
        description="The person's flagged needs items (score above 0) behind this programme."
    )


class NotRecommendedProgramme(StrictModel):
    """A programme left out for one person, and why."""

    programme: str
    reason: str = Field(
        description="not_eligible, outside_evidence (people like this were almost never or "
        "almost always referred) or not_clearly_beneficial."
    )
    explanation: str


class PathwayRecommendation(StrictModel):
    """One person's recommendations; the practitioner decides."""

    subject_ref: str = Field(description="The caller's reference, echoed.")
    risk_without: float = Field(
        ge=0,
        le=1,
        description="The person's estimated 12-month re-offending probability with no referral.",
    )
    offered_programme: str | None = Field(
        description="The one programme the served policy offers (the policy the pathway "
        "benchmark measures): a personal pick when it is recommended with confidence and "
        "beats the best single programme by the model's margin, else the best single "
        "programme when open to the person; null when none is."
    )
    offered_basis: OfferBasis | None = Field(
        description="confident_personal_pick, personal_pick (a pick the model's truth-free "
        "selection serves without the confidence gate) or default_programme (the best single "
        "programme, chosen on the training people); null when nothing is offered."
    )
    risk_with_offered: float | None = Field(
        ge=0,
        le=1,
        description="The person's estimated risk with a referral to the offered programme alone.",
    )
    recommended: list[RecommendedProgramme] = Field(
        description="Programmes clearly likely to lower this person's risk, largest reduction "
        "first; empty when none is."
    )
    not_recommended: list[NotRecommendedProgramme]


class PathwayRecommendationResponse(VersionedAnswer):
    """Recommendations of a batch, in request order, with the model version that gave them."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [EXAMPLE_RECOMMENDATIONS]}
    )

    request_id: str = Field(description="Quote it to find the audit records of these answers.")
    recommendations: list[PathwayRecommendation]


class Violation(StrictModel):
    """One reason a request was refused."""

    assessment_index: int | None = Field(
        description="Position of the assessment (or outcome) in the batch (from 0); "
        "null for the whole request."
    )
    field: str | None = Field(description="The offending field, when there is one.")
    reason: str


class ErrorBody(StrictModel):
    """Every error the service answers with."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [EXAMPLE_INVALID_REQUEST]}
    )

    error: str = Field(description="Machine-readable kind of error.")
    detail: str
    request_id: str | None = None
    violations: list[Violation] | None = None
    violation_count: int | None = Field(
        default=None,
        description="How many violations were found; at most DESIST_MAX_VIOLATIONS are listed.",
    )

    def to_content(self) -> dict[str, Any]:
        """Return the JSON body: optional top-level fields left out when empty.

        Only the top level: a violation's ``assessment_index`` and ``field``
        are always present, null when they do not apply, as the schema says.
        """
        return {key: value for key, value in self.model_dump().items() if value is not None}


class ModelsResponse(StrictModel):
    """The model versions served."""

    models: list[dict[str, Any]]


class ReloadResponse(StrictModel):
    """The outcome of a reload."""

    status: str
    previous_version: str | None
    model: dict[str, Any]
    pathway_model: dict[str, Any] | None = Field(
        description="The pathway model served after the reload; null when none is."
    )
    pathway_status: str = Field(description="What the reload did to the pathway model.")


@cache
def assessment_batch_model(max_batch: int) -> type[BaseModel]:
    """Return the body model of the scoring and recommendation routes for a batch limit.

    An oversized batch fails before its items are validated, with an error of
    type ``batch_too_large`` that the service answers with 413.
    """

    def check_size(value: object) -> object:
        if isinstance(value, list) and len(value) > max_batch:
            raise PydanticCustomError(
                BATCH_TOO_LARGE,
                "{count} assessments in one request; at most {limit} are accepted",
                {"count": len(value), "limit": max_batch},
            )
        return value

    assessments: Any = Annotated[
        list[make_assessment_model()],  # type: ignore[misc]
        BeforeValidator(check_size),
        Field(
            min_length=1,
            description=f"1 to {max_batch} assessments; each answer is audited.",
        ),
    ]
    model: type[BaseModel] = create_model(
        "AssessmentBatch",
        __config__=ConfigDict(extra="forbid"),
        __doc__="Assessments to score or to recommend pathways for.",
        assessments=(assessments, ...),
    )
    model.max_batch = max_batch  # type: ignore[attr-defined]  # read by serving.scoring
    model.direct_model = _direct_batch_model(max_batch)  # type: ignore[attr-defined]  # likewise
    model.columnar = ColumnarCheck(max_batch)  # type: ignore[attr-defined]  # likewise
    return model


def _direct_batch_model(max_batch: int) -> type[BaseModel]:
    """Return the batch body that pydantic validates straight from the JSON bytes.

    The same assessments, without the size check's ``BeforeValidator``: a
    Python function before the list makes pydantic hand it Python objects, so
    the items were validated from dicts parsed first (half again the cost of a
    1,000-assessment body). This one is for bodies that turn out valid
    (:func:`serving.scoring.parse_body`): its first invalid assessment ends
    validation (``fail_fast``), and its size limit is a plain maximum; any
    body it refuses is validated again by :func:`assessment_batch_model`,
    whose errors the client is told.
    """
    assessments: Any = Annotated[
        list[make_assessment_model()],  # type: ignore[misc]
        Field(min_length=1, max_length=max_batch, fail_fast=True),
    ]
    model: type[BaseModel] = create_model(
        "AssessmentBatch",
        __config__=ConfigDict(extra="forbid"),
        assessments=(assessments, ...),
    )
    return model


def openapi_request_body(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the OpenAPI ``requestBody`` of a JSON body model and the component schemas it uses.

    For routes that read and validate their raw body themselves (see
    ``serving.routes.batch.read_body``), so that ``/docs`` still documents every
    field with its range.

    Returns
    -------
    tuple[dict, dict]
        ``openapi_extra`` for the route, and the schemas to add under
        ``components/schemas``.
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = schema.pop("$defs", {})
    components[model.__name__] = schema
    body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{model.__name__}"},
                    "example": {"assessments": [EXAMPLE_ASSESSMENT]},
                }
            },
        }
    }
    return body, components
