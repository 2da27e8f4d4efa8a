"""Bodies of the oversight routes: ``POST /v1/decisions`` and ``POST /v1/outcomes``.

The decision body itself is the data layer's :class:`data.decisions.DecisionRequest`
(one contract for the service and the exported table); the outcome rows have
the columns of an outcomes file (:data:`data.outcomes.OUTCOME_COLUMNS`).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from serving.schemas import BATCH_TOO_LARGE, StrictModel

#: Most outcome rows in one ``POST /v1/outcomes`` (about 0.9 MB of JSON); a larger
#: file goes through ``desist outcomes import``.
MAX_OUTCOMES_PER_REQUEST = 10_000

DECISION_EXAMPLES: dict[str, Any] = {
    "accepted": {
        "summary": "Accepted as advised",
        "value": {
            "request_id": "3f1c2a9e8b7d4c6f9a0b1c2d3e4f5a6b",
            "subject_ref": "case-0001",
            "decision": "accepted",
            "practitioner_ref": "po-4711",
        },
    },
    "overridden": {
        "summary": "Overridden to another band, with a reason",
        "value": {
            "request_id": "3f1c2a9e8b7d4c6f9a0b1c2d3e4f5a6b",
            "subject_ref": "case-0001",
            "decision": "overridden",
            "override_band": "high",
            "override_action": "drugs_alcohol",
            "reason": "Relapse disclosed at interview after the assessment was completed.",
            "practitioner_ref": "po-4711",
        },
    },
}

OUTCOME_EXAMPLES: dict[str, Any] = {
    "two people": {
        "summary": "One new sanction, one person with none",
        "value": {
            "outcomes": [
                {
                    "subject_ref": "case-0001",
                    "outcome_date": "2026-03-14",
                    "follow_up_end": "2026-11-30",
                },
                {"subject_ref": "case-0002", "outcome_date": None, "follow_up_end": "2026-11-30"},
            ]
        },
    }
}


class DecisionRecorded(StrictModel):
    """A decision as recorded: which score, which revision."""

    request_id: str = Field(description="The request id of the score decided on, as sent.")
    subject_ref: str = Field(description="The person the score was for, as sent.")
    served: Literal["scores", "recommendations"] = Field(
        description="Whether the decision is on a risk score or a pathway recommendation."
    )
    revision: int = Field(
        ge=1, description="1 for the first decision on this score; each later one adds 1."
    )
    decision: Literal["accepted", "overridden"]
    decision_request_id: str = Field(
        description="This request's own id (X-Request-ID): quote it to find the audit row."
    )


class OutcomeIn(StrictModel):
    """One person's outcome: the first new sanction since follow-up began, or none."""

    subject_ref: str = Field(
        min_length=1, max_length=128, description="The reference the person was scored under."
    )
    outcome_date: date | None = Field(
        description="Date of the first new sanction (YYYY-MM-DD); null when there was none."
    )
    follow_up_end: date = Field(description="Last date the person's record was checked.")


def _check_size(value: object) -> object:
    if isinstance(value, list) and len(value) > MAX_OUTCOMES_PER_REQUEST:
        raise PydanticCustomError(
            BATCH_TOO_LARGE,
            "{count} outcomes in one request; at most {limit} are accepted "
            "(import larger files with 'desist outcomes import')",
            {"count": len(value), "limit": MAX_OUTCOMES_PER_REQUEST},
        )
    return value


class OutcomesRequest(StrictModel):
    """Outcomes to import: all of them, or none if any row is refused."""

    outcomes: Annotated[
        list[OutcomeIn],
        BeforeValidator(_check_size),
        Field(
            min_length=1,
            description=f"1 to {MAX_OUTCOMES_PER_REQUEST} rows, one per person.",
        ),
    ]


class OutcomesRecorded(StrictModel):
    """An import as recorded."""

    request_id: str = Field(description="This import's id: its rows carry it in the audit log.")
    rows: int = Field(ge=1, description="Rows recorded (every row sent).")
