"""``/v1/models``: the model versions served, with their provenance and model card."""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

from fastapi import APIRouter

from serving.dependencies import ClientDep, ModelDep, PathwayHolderDep
from serving.error_handlers import ERROR_RESPONSES
from serving.schemas import ModelsResponse

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
