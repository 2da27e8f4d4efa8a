"""The scoring service: a FastAPI app that scores assessments and audits every score.

Build it with :func:`create_app` (tests, embedding) or let uvicorn call
:func:`create_app_from_env`. Nothing is loaded at import: the database and
the model are opened in the app's lifespan (:mod:`serving.lifespan`).

Where the rest lives: routes per resource in :mod:`serving.routes`, their
typed dependencies in :mod:`serving.dependencies`, the one error-to-HTTP
mapping in :mod:`serving.error_handlers`, the request context in
:mod:`serving.middleware`, and the domain step (validate, score, build the
audit entry) in :mod:`serving.scoring`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from serving.docs import make_docs_app
from serving.error_handlers import install_error_handlers
from serving.lifespan import make_lifespan
from serving.logs import configure_logging
from serving.metrics import Metrics
from serving.middleware import RequestContextMiddleware
from serving.model_cards import ModelCards
from serving.ratelimit import RateLimitMiddleware
from serving.registry_loader import registry_client
from serving.routes import (
    admin,
    decisions,
    models,
    operations,
    outcomes,
    pathway_allocations,
    pathway_recommendations,
    risk_scores,
)
from serving.routes.batch import BatchBody
from serving.security import OperationsGuardMiddleware, install_cors
from serving.settings import Settings, get_settings

API_DESCRIPTION = """\
Scores offender assessments for a case system, and recommends rehabilitation pathways.

* **POST /v1/risk-scores**: the calibrated probability of a new sanction within 12 months,
  its band (`low`, `medium`, `high`, `very high`) and the fields that moved it most, each
  with the value sent and whether it `raises` or `lowers` the risk.
* **POST /v1/pathway-recommendations**: the programmes likely to lower each person's risk,
  with the estimated reduction and its interval, why every other is left out, and the one
  programme the served policy offers.
* **POST /v1/pathway-allocations** (`allocate` scope): a cohort's programme places, at most one
  per person, to prevent the most re-offending; with the allocation's shares by ethnicity and sex.
* **GET /v1/models**: the versions served, their figures and a link to each model card.

Send `Authorization: Bearer <key>` and a JSON body of 1 or more assessments. Every answer is
written to the audit log before it is sent; quote its `request_id` to find it.

**Errors** all have one body (`ErrorBody`): `error` (a machine-readable kind such as
`invalid_request`, `unauthenticated`, `payload_too_large`, `model_unavailable`), `detail` in
words, the `request_id`, and for a refused batch the `violations`: the assessment's position
(from 0), the field and the reason, naming the value sent and what is allowed. A request is
answered whole or refused whole: never a 200 with an error inside.
"""


def create_app(settings: Settings) -> FastAPI:
    """Return the scoring service app for ``settings``.

    The database and the model are opened when the app starts (its
    lifespan), not here; a model that fails to load leaves the app running
    and ``/readyz`` answering 503 with the reason.
    """
    docs = settings.docs_access != "off"
    # /docs and /redoc from files the service serves: they render on a closed network.
    app = make_docs_app(
        docs=docs,
        title="desist scoring service",
        summary="Calibrated re-offending risk scores with reasons, audited.",
        description=API_DESCRIPTION,
        version="1",
        lifespan=make_lifespan(settings),
        # A trailing-slash redirect takes its Location from the client's Host header.
        redirect_slashes=False,
    )
    metrics = Metrics()
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.model_cards = ModelCards(
        lambda: registry_client(settings), (settings.model_name, settings.pathway_model_name)
    )
    install_error_handlers(app, metrics, settings.max_violations)
    add_routes(app, settings)
    app.add_middleware(OperationsGuardMiddleware, settings=settings)
    app.add_middleware(RateLimitMiddleware, settings=settings)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=metrics,
        max_header_bytes=settings.max_header_bytes,
        body_timeout=settings.body_timeout_seconds,
    )
    install_cors(app, settings)
    return app


def add_routes(app: FastAPI, settings: Settings) -> None:
    """Declare the service's endpoints on ``app``, resource by resource."""
    body = BatchBody.for_limit(settings.max_batch)
    add_openapi_components(app, body.schemas)
    app.include_router(risk_scores.make_router(body))
    app.include_router(pathway_recommendations.make_router(body))
    allocation = pathway_allocations.allocation_body(settings.max_allocation_batch)
    add_openapi_components(app, allocation.schemas)
    app.include_router(pathway_allocations.make_router(allocation))
    app.include_router(decisions.router)
    app.include_router(outcomes.router)
    app.include_router(models.router)
    app.include_router(admin.router)
    app.include_router(operations.router)


def add_openapi_components(app: FastAPI, schemas: Mapping[str, Any]) -> None:
    """Add schemas under ``components/schemas`` of the app's OpenAPI document.

    For the bodies that routes validate themselves (:class:`~serving.routes.batch.BatchBody`).
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()  # cached by FastAPI after the first call
        document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def create_app_from_env() -> FastAPI:
    """Return the app configured from ``DESIST_*`` variables, with JSON logs (for uvicorn)."""
    configure_logging()
    return create_app(get_settings())
