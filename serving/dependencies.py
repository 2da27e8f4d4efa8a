"""Typed dependencies of the routes: the served models, their holders, the metrics, API keys.

Each is an ``Annotated[..., Depends(...)]`` alias a route names in its
signature. The models are read once per request, so a reload cannot change
them mid-request.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.base import SecurityBase
from starlette.concurrency import run_in_threadpool

from serving.errors import AuthenticationError, PermissionDeniedError
from serving.keys import Client, KeyStore
from serving.metrics import Metrics
from serving.model_cards import ModelCards
from serving.registry_loader import LoadedModel, LoadedPathwayModel, ModelHolder

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A desist API key: `Authorization: Bearer dsk_...` (`desist keys create`).",
)


def served_model(request: Request) -> LoadedModel:
    """Return the model to score with; read it once, so a reload cannot change it mid-request.

    Raises
    ------
    ModelUnavailableError
        While no model is loaded.
    """
    holder: ModelHolder[LoadedModel] = request.app.state.holder
    return holder.get()


def served_pathway_model(request: Request) -> LoadedPathwayModel:
    """Return the pathway model to recommend with; read it once per request.

    Raises
    ------
    ModelUnavailableError
        While no pathway model is loaded.
    """
    holder: ModelHolder[LoadedPathwayModel] = request.app.state.pathway_holder
    return holder.get()


async def get_model(request: Request) -> LoadedModel:
    """Return the model to score with (:func:`served_model`, as a dependency)."""
    return served_model(request)


async def get_pathway_model(request: Request) -> LoadedPathwayModel:
    """Return the pathway model to recommend with (:func:`served_pathway_model`)."""
    return served_pathway_model(request)


async def get_metrics(request: Request) -> Metrics:
    """Return this process's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_model_cards(request: Request) -> ModelCards:
    """Return the store of the served models' cards."""
    cards: ModelCards = request.app.state.model_cards
    return cards


async def get_holder(request: Request) -> ModelHolder[LoadedModel]:
    """Return the risk model's holder (for reloads)."""
    holder: ModelHolder[LoadedModel] = request.app.state.holder
    return holder


async def get_pathway_holder(request: Request) -> ModelHolder[LoadedPathwayModel]:
    """Return the pathway model's holder (for reloads)."""
    holder: ModelHolder[LoadedPathwayModel] = request.app.state.pathway_holder
    return holder


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Client:
    """Return the client whose API key the request carries.

    Raises
    ------
    AuthenticationError
        Without a bearer key, or with one that is unknown or revoked.
    """
    if credentials is None:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    keys: KeyStore = request.app.state.keys
    client = keys.cached(credentials.credentials)
    if client is None:
        # scrypt and a database read: off the event loop.
        client = await run_in_threadpool(keys.verify, credentials.credentials)
    request.state.client = client.name
    return client


class KeyCheck(SecurityBase):
    """The dependency that admits clients whose key allows ``scope``.

    Authentication and the scope check are one dependency, and that one is also the
    bearer scheme the OpenAPI document names (``ApiKey``, :data:`bearer`'s): FastAPI's
    resolution costs tens of microseconds per dependency on every request, and a
    ``Depends(bearer)`` inside the check was a second one. The header is read by
    :data:`bearer` itself, so which headers count as a bearer key is unchanged.
    """

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.model = bearer.model
        self.scheme_name = bearer.scheme_name

    async def __call__(self, request: Request) -> Client:
        """Return the request's client, checked for this scope.

        Raises
        ------
        AuthenticationError
            Without a bearer key, or with one that is unknown or revoked.
        PermissionDeniedError
            If the key's scope does not allow this one.
        """
        client = await authenticate(request, await bearer(request))
        if not client.may(self.scope):
            raise PermissionDeniedError(
                f"this key's scope ({client.scope}) does not allow {self.scope}"
            )
        return client


def require(scope: str) -> Callable[..., Awaitable[Client]]:
    """Return a dependency that admits clients whose key allows ``scope`` (a :class:`KeyCheck`)."""
    return KeyCheck(scope)


ModelDep = Annotated[LoadedModel, Depends(get_model)]
PathwayModelDep = Annotated[LoadedPathwayModel, Depends(get_pathway_model)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ModelCardsDep = Annotated[ModelCards, Depends(get_model_cards)]
HolderDep = Annotated[ModelHolder[LoadedModel], Depends(get_holder)]
PathwayHolderDep = Annotated[ModelHolder[LoadedPathwayModel], Depends(get_pathway_holder)]
ClientDep = Annotated[Client, Depends(require("score"))]
AdminDep = Annotated[Client, Depends(require("admin"))]
