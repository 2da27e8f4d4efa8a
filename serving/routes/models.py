"""``/v1/models``: the model versions served, with their provenance and model card."""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from serving.dependencies import ClientDep, ModelCardsDep, ModelDep, PathwayHolderDep
from serving.error_handlers import ERROR_RESPONSES
from serving.schemas import ErrorBody, ModelsResponse

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelsResponse, responses=ERROR_RESPONSES)
async def list_models(
    client: ClientDep, model: ModelDep, pathways: PathwayHolderDep
) -> ModelsResponse:
    """Describe the model versions served: training data and date, metrics, model card."""
    served = [model.describe()]
    if pathways.current is not None:
        served.append(pathways.current.describe())
    return ModelsResponse(models=served)


@router.get(
    "/v1/models/{name}/{version}/card",
    response_class=Response,
    responses={
        **ERROR_RESPONSES,
        200: {
            "content": {"text/html": {}, "text/markdown": {}},
            "description": "The version's model card, as the training job wrote it.",
        },
        404: {"model": ErrorBody, "description": "No such model or version, or no card."},
    },
)
async def model_card(name: str, version: str, client: ClientDep, cards: ModelCardsDep) -> Response:
    """Return the model card of a version of a served model (the link ``/v1/models`` gives).

    Its data and digest, intended use, figures with intervals, fairness, the gate
    decision and limits; fetched from the model registry once, then kept.
    """
    card = await run_in_threadpool(cards.get, name, version)
    return Response(content=card.content, media_type=card.media_type)
