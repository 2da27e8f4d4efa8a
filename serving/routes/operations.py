"""``/healthz``, ``/readyz`` and ``/metrics``: what an orchestrator and a scraper ask."""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from serving.dependencies import HolderDep, MetricsDep, PathwayHolderDep
from serving.schemas import ErrorBody

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Answer while the process is alive."""
    return {"status": "alive"}


@router.get(
    "/readyz",
    responses={503: {"model": ErrorBody, "description": "Not ready, with the reason."}},
)
async def readyz(holder: HolderDep, pathways: PathwayHolderDep) -> dict[str, str]:
    """Answer 200 once the risk model is loaded; 503 with the reason before that.

    The pathway model is optional: its state is reported, not required.
    """
    model = holder.get()
    pathway = pathways.current
    return {
        "status": "ready",
        "model": model.name,
        "version": model.version,
        "pathway_model": "not loaded" if pathway is None else pathway.version,
    }


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        401: {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            "description": "No valid API key (unless DESIST_METRICS_ACCESS=open or the caller "
            "is in DESIST_OPERATIONS_ADDRESSES).",
        },
        429: {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            "description": "Too many unverified keys from this address.",
        },
    },
)
async def metrics_text(request: Request, metrics: MetricsDep) -> PlainTextResponse:
    """Return the Prometheus metrics of this instance (every worker) and the latest drift."""
    snapshot = request.app.state.settings.monitoring_snapshot
    # Reads the snapshot file and, in multiprocess mode, every worker's files: off the loop.
    text = await run_in_threadpool(metrics.render, snapshot)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
