"""``/v1/decisions``: a practitioner's decision on a served score or recommendation, audited.

Keys with the ``score`` scope may record decisions: the case system that asked
for a score records what its practitioner then decided (an ``admin`` key may
too). Insert-only: a second decision on the same score is its next revision.
"""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from data.decisions import DecisionRequest
from serving.dependencies import ClientDep
from serving.error_handlers import ERROR_RESPONSES
from serving.oversight import decide
from serving.oversight_schemas import DECISION_EXAMPLES, DecisionRecorded
from serving.routes.batch import in_worker, record_route
from serving.schemas import ErrorBody

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"model": ErrorBody, "description": "No score or recommendation was served so named."},
    422: {
        "model": ErrorBody,
        "description": "Invalid decision: an override without a reason, or to the band served.",
    },
}

router = APIRouter(tags=["oversight"])


@record_route(
    router,
    "/v1/decisions",
    DecisionRecorded,
    RESPONSES,
    "Record a practitioner's decision on a served score",
)
async def record_decision(
    request: Request,
    client: ClientDep,  # first: an unauthenticated caller learns nothing of what was served
    decision: Annotated[DecisionRequest, Body(openapi_examples=DECISION_EXAMPLES)],
) -> DecisionRecorded:
    """Record that the score was accepted, or overridden to another band or action.

    The score is named by the request id it was answered with and the
    subject_ref. An override needs a reason (3 to 1,000 characters) and may
    not be "to" the band served. The decision is written to the audit log
    before the answer; a later decision on the same score is recorded as
    the next revision, never as a change to this one.
    """
    engine = request.app.state.scoring.audit.engine
    record, served = await in_worker(request, decide, engine, decision, client)
    return DecisionRecorded(
        request_id=record.request_id,
        subject_ref=record.subject_ref,
        served=served.kind,
        revision=record.revision,
        decision=decision.decision,
        decision_request_id=request.state.request_id,
    )
