"""``/v1/pathway-recommendations``: rehabilitation programmes likely to lower the risk, audited."""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.dependencies import ClientDep, served_pathway_model
from serving.routes.batch import BatchBody, KeyCheckedRoute, answer, batch_route
from serving.schemas import PathwayRecommendationResponse
from serving.scoring import recommend_batch


def make_router(body: BatchBody) -> APIRouter:
    """Return the pathway-recommendation route for batches of ``body``."""
    # A key check and the endpoint, called without FastAPI's dependency resolution.
    router = APIRouter(tags=["pathways"], route_class=KeyCheckedRoute)

    @batch_route(
        router,
        body,
        "/v1/pathway-recommendations",
        PathwayRecommendationResponse,
        "Recommend rehabilitation pathways for a batch of assessments",
    )
    async def recommend_pathways(request: Request, client: ClientDep) -> Response:
        """Rank the programmes likely to lower each person's 12-month re-offending risk.

        Each recommended programme comes with its estimated absolute reduction, an
        interval and the needs items behind it; every other programme with the reason
        it is left out (not eligible, outside the evidence, not clearly beneficial).
        Same input, keys and audit as risk scores; the practitioner decides.
        """
        model = served_pathway_model(request)  # after the key check, as for risk scores
        response, tops = await answer(request, recommend_batch, body, model, client)
        request.app.state.metrics.count_recommendations(model.version, tops)
        return response

    return router
