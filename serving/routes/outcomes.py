"""``/v1/outcomes``: people's outcomes, imported whole or not at all, audited.

Keys with the ``outcomes`` scope (a records feed, which may not score) or
``admin`` may import. Larger files go through ``desist outcomes import``.
"""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from serving.dependencies import require
from serving.error_handlers import ERROR_RESPONSES
from serving.keys import Client
from serving.oversight import outcomes_entry
from serving.oversight_schemas import OUTCOME_EXAMPLES, OutcomesRecorded, OutcomesRequest
from serving.routes.batch import in_worker, record_route
from serving.schemas import ErrorBody

OutcomesClientDep = Annotated[Client, Depends(require("outcomes"))]

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    413: {"model": ErrorBody, "description": "Too many rows, or the body is too large."},
    422: {"model": ErrorBody, "description": "Invalid rows: see violations (nothing recorded)."},
}

router = APIRouter(tags=["oversight"])


@record_route(
    router,
    "/v1/outcomes",
    OutcomesRecorded,
    RESPONSES,
    "Import outcomes: the first new sanction, or none, and the end of follow-up",
)
async def import_outcomes(
    request: Request,
    client: OutcomesClientDep,
    body: Annotated[OutcomesRequest, Body(openapi_examples=OUTCOME_EXAMPLES)],
) -> OutcomesRecorded:
    """Record one outcome row per person, all of them in one transaction.

    Validated as an outcomes file is (a duplicate person, a sanction after the
    end of follow-up, an implausible date): any violation refuses the whole
    request (422, every violation by position and field) and records nothing.
    The newest row per person counts.
    """
    rows = await in_worker(request, outcomes_entry, body, client)
    return OutcomesRecorded(request_id=request.state.request_id, rows=rows)
