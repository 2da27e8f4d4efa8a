"""``/v1/risk-scores``: calibrated re-offending risk scores with reasons, audited."""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.dependencies import ClientDep, served_model
from serving.routes.batch import BatchBody, KeyCheckedRoute, answer, batch_route
from serving.schemas import RiskScoreResponse
from serving.scoring import score_batch


def make_router(body: BatchBody) -> APIRouter:
    """Return the risk-score route for batches of ``body``."""
    # A key check and the endpoint, called without FastAPI's dependency resolution.
    router = APIRouter(tags=["scores"], route_class=KeyCheckedRoute)

    @batch_route(router, body, "/v1/risk-scores", RiskScoreResponse, "Score a batch of assessments")
    async def score_assessments(request: Request, client: ClientDep) -> Response:
        """Return the calibrated re-offending probability, band and reasons of each assessment.

        Every score is written to the audit log before the response is sent.
        """
        # Read after the key check (no one learns anything about the model before auth),
        # once, and here rather than as a second dependency: each costs FastAPI tens of
        # microseconds of resolution on every request.
        model = served_model(request)
        response, bands = await answer(request, score_batch, body, model, client)
        request.app.state.metrics.count_scores(model.version, bands)
        return response

    return router
