"""``/admin/reload``: load the versions the aliases point at now (admin keys only)."""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

from fastapi import APIRouter

from models.contract.errors import ModelLoadError
from serving.dependencies import AdminDep, HolderDep, PathwayHolderDep
from serving.error_handlers import ERROR_RESPONSES
from serving.logs import get_logger
from serving.registry_loader import LoadedPathwayModel, ModelHolder
from serving.schemas import ReloadResponse

log = get_logger("serving")

router = APIRouter(tags=["admin"])


@router.post("/admin/reload", response_model=ReloadResponse, responses=ERROR_RESPONSES)
def reload_model(holder: HolderDep, pathways: PathwayHolderDep, client: AdminDep) -> ReloadResponse:
    """Load the versions the aliases point at now; on failure the old models keep serving."""
    previous = holder.current
    pathway_status = _reload_pathways(pathways)
    try:
        loaded = holder.reload()
    except ModelLoadError as err:
        still = f"still serving version {previous.version}" if previous else "no model served"
        raise ModelLoadError(f"reload failed ({still}): {err}") from err
    log.info(
        "model reloaded",
        extra={"client": client.name, "version": loaded.version},
    )
    return ReloadResponse(
        status="reloaded",
        previous_version=None if previous is None else previous.version,
        model=loaded.describe(),
        pathway_model=None if pathways.current is None else pathways.current.describe(),
        pathway_status=pathway_status,
    )


def _reload_pathways(holder: ModelHolder[LoadedPathwayModel]) -> str:
    """Reload the pathway model; say what happened (a failure keeps the old one serving)."""
    previous = holder.current
    try:
        loaded = holder.reload()
    except ModelLoadError:
        kept = f"still serving version {previous.version}" if previous else "none served"
        return f"not reloaded ({kept}): {holder.public_reason}"
    return f"serving version {loaded.version}"
