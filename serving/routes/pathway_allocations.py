"""``/v1/pathway-allocations``: a cohort's programme places allocated, audited.

Keys with the ``allocate`` scope (or ``admin``) may allocate. Not ``score``:
an allocation decides places across a whole cohort and reports it by
ethnicity and sex, which is the commissioning or planning side's act, not a
case system's question about one person; nor ``admin`` only, which would
hand a planning tool the power to reload models.
"""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from serving.allocation_schemas import (
    PathwayAllocationResponse,
    allocation_request_body,
    allocation_request_model,
)
from serving.allocator import allocate_batch
from serving.dependencies import PathwayModelDep, require
from serving.keys import Client
from serving.routes.batch import BatchBody, batch_route, in_worker, read_body

#: The route's path (the allocation is a pathway resource, beside the recommendations).
PATH = "/v1/pathway-allocations"

#: A client whose key allows allocating (``allocate`` or ``admin``).
AllocateDep = Annotated[Client, Depends(require("allocate"))]


def allocation_body(max_people: int) -> BatchBody:
    """Return the allocation route's body for cohorts of at most ``max_people``."""
    model = allocation_request_model(max_people)
    openapi, schemas = allocation_request_body(model)
    return BatchBody(model, openapi, schemas)


def make_router(body: BatchBody) -> APIRouter:
    """Return the pathway-allocation route for cohorts of ``body``."""
    router = APIRouter(tags=["pathways"])

    @batch_route(router, body, PATH, PathwayAllocationResponse, "Allocate a cohort's places")
    async def allocate_pathways(
        request: Request,
        client: AllocateDep,
        model: PathwayModelDep,
    ) -> Response:
        """Give each person at most one programme place, to prevent the most re-offending.

        The places of each programme go first to the served policy's confident
        pairs (confident personal picks and the best single programme), then to
        the next best positive estimates, always eligible and inside the evidence;
        the total of the expected reductions is the largest those places allow.
        Each person's programme (or none) comes with its expected reduction and the
        person's risk without and with it; the places filled per programme and the
        allocation's shares by ethnicity and sex (audit only, never features) follow.
        Every person allocated a place is written to the audit log before the answer.
        """
        raw = await read_body(request)
        content = await in_worker(request, allocate_batch, raw, body.model, model, client)
        return Response(content=content, media_type="application/json")

    return router
