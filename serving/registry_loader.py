"""Fetch the served model from the MLflow registry, check it, and hold it for requests.

The version behind ``models:/NAME@ALIAS`` is fetched verified by
:func:`models.contract.fetch.fetch_model`, as batch scoring fetches its
model: its files must match the digest recorded at registration *before*
anything is deserialised, and hold only the types desist builds.

:func:`load_model` gives the risk model, :func:`load_pathway_model` the
pathway model; :class:`ModelHolder` keeps each one being served. A reload builds the new
model completely and then replaces one reference; a request reads that
reference once, so requests in flight finish on the model they started with.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypedDict, TypeVar

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.schema import EXAMPLE_ASSESSMENT, make_assessment_model
from models.calibration import ScoreCalibratedClassifier
from models.contract.errors import (
    ModelIntegrityError,
    ModelLoadError,
    ModelUnavailableError,
    redact_credentials,
)
from models.contract.fetch import FetchedModel, fetch_model
from models.contract.tags import (
    TAG_AUC,
    TAG_DATASET,
    TAG_ECE,
    TAG_FAMILY,
    TAG_GROUP_GAP,
    TAG_MODEL_CARD,
    TAG_POLICY_VALUE,
    TAG_RNR_VALUE,
    TAG_RUN,
    TAG_TRAINED_AT,
)
from models.pathways import PathwayEffectModel
from models.threads import choose_threads
from serving.model_cards import card_url
from serving.recommender import Recommender
from serving.scorer import Scorer
from serving.settings import Settings

log = logging.getLogger("desist").getChild("serving.models")

ModelT = TypeVar("ModelT", "LoadedModel", "LoadedPathwayModel")
FetchedT = TypeVar("FetchedT", ScoreCalibratedClassifier, PathwayEffectModel)


def _figure(tags: dict[str, str], name: str) -> float | None:
    try:
        return float(tags[name])
    except (KeyError, ValueError):
        return None


def _provenance(tags: dict[str, str]) -> dict[str, Any]:
    """Return when, on what data and by which run a version was trained (its tags)."""
    try:
        dataset = json.loads(tags.get(TAG_DATASET, "null"))
    except ValueError:
        dataset = None
    return {
        "trained_at": tags.get(TAG_TRAINED_AT),
        "dataset": dataset,
        "run_id": tags.get(TAG_RUN),
    }


#: The figures ``GET /v1/models`` reports of each kind of model: its name there -> the tag.
_RISK_FIGURES = {
    "test_roc_auc": TAG_AUC,
    "test_ece": TAG_ECE,
    "max_group_calibration_gap": TAG_GROUP_GAP,
}
_PATHWAY_FIGURES = {
    "estimated_policy_value": TAG_POLICY_VALUE,
    "estimated_rnr_value": TAG_RNR_VALUE,
}
_PATHWAY_FAMILY = "doubly robust per-programme effects"


def _describe(
    model: ServedVersion, kind: str, details: dict[str, Any], figures: dict[str, str]
) -> dict[str, Any]:
    """Return what ``GET /v1/models`` says of a served version: who it is, then its own facts."""
    return {
        "name": model.name,
        "version": model.version,
        "alias": model.alias,
        "kind": kind,
        **details,
        **_provenance(model.tags),
        # The service's own link: the tag's runs:/ URI opens nowhere outside MLflow.
        "model_card": card_url(model.name, model.version) if TAG_MODEL_CARD in model.tags else None,
        "metrics": {name: _figure(model.tags, tag) for name, tag in figures.items()},
        "artifact_digest": model.digest,
        "loaded_at": model.loaded_at.isoformat(timespec="seconds"),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedVersion:
    """A registered version being served: who it is, and what it was verified against."""

    name: str
    version: str
    alias: str
    digest: str
    tags: dict[str, str]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class _Registration(TypedDict):
    """The :class:`ServedVersion` fields of a fetched version, as keyword arguments."""

    name: str
    version: str
    alias: str
    digest: str
    tags: dict[str, str]


def _registration(settings: Settings, name: str, fetched: FetchedModel[Any]) -> _Registration:
    return _Registration(
        name=name,
        version=str(fetched.version),
        alias=settings.model_alias,
        digest=fetched.digest,
        tags=fetched.tags,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedModel(ServedVersion):
    """A registered risk-model version, verified and ready to score."""

    scorer: Scorer

    def describe(self) -> dict[str, Any]:
        """Return what ``GET /v1/models`` says about this version."""
        details = {
            "family": self.tags.get(TAG_FAMILY),
            "explanation_method": self.scorer.method,
            "features": list(self.scorer.features),
            "bands": list(self.scorer.bands.cutoffs),
        }
        return _describe(self, "risk", details, _RISK_FIGURES)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedPathwayModel(ServedVersion):
    """A registered pathway-model version, verified and ready to recommend."""

    recommender: Recommender

    def describe(self) -> dict[str, Any]:
        """Return what ``GET /v1/models`` says about this version."""
        details = {"family": _PATHWAY_FAMILY, "features": list(self.recommender.features)}
        return _describe(self, "pathways", details, _PATHWAY_FIGURES)


def registry_client(settings: Settings) -> MlflowClient:
    """Return a client on the tracking store and registry the settings name."""
    uri = settings.resolved_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def champion_version(settings: Settings, name: str | None = None) -> str:
    """Return the version the alias of ``name`` (default: the risk model) points at now.

    Cheap: no download.

    Raises
    ------
    ModelLoadError
        If the registry cannot be read or the alias is not set.
    """
    name = name or settings.model_name
    try:
        found = registry_client(settings).get_model_version_by_alias(name, settings.model_alias)
    except MlflowException as err:
        raise ModelLoadError(
            f"cannot resolve models:/{name}@{settings.model_alias}: {redact_credentials(str(err))}"
        ) from err
    return str(found.version)


def _fetch(settings: Settings, name: str, expect: type[FetchedT]) -> FetchedModel[FetchedT]:
    """Fetch, verified, the version behind ``name``'s alias (see :func:`fetch_model`)."""
    uri = f"models:/{name}@{settings.model_alias}"
    return fetch_model(uri, expect, tracking_uri=settings.resolved_tracking_uri())


def _log_loaded(loaded: ServedVersion) -> None:
    extra = {"model": loaded.name, "version": loaded.version, "digest": loaded.digest}
    log.info("loaded model", extra=extra)


def load_model(settings: Settings) -> LoadedModel:
    """Return the verified risk model behind the alias, ready to score.

    Raises
    ------
    ModelIntegrityError
        If its files do not match the digest recorded at registration.
    ModelLoadError
        If it cannot be resolved, read or scored, or uses an audit-only field.
    """
    name = settings.model_name
    fetched = _fetch(settings, name, ScoreCalibratedClassifier)
    # The thread budget (the service passes the one its lifespan chose): a large batch's walk
    # shares it.
    threads = choose_threads(settings.threads).threads
    scorer = Scorer(fetched.model, fetched.bands, settings.top_reasons, threads)
    loaded = LoadedModel(scorer=scorer, **_registration(settings, name, fetched))
    _log_loaded(loaded)
    return loaded


def load_pathway_model(settings: Settings) -> LoadedPathwayModel:
    """Return the verified pathway model behind the alias, ready to recommend.

    Raises the errors of :func:`load_model` (a pathway model is not scored at load).
    """
    name = settings.pathway_model_name
    fetched = _fetch(settings, name, PathwayEffectModel)
    recommender = Recommender(fetched.model)
    _warm_up(recommender, f"{name} version {fetched.version}")
    loaded = LoadedPathwayModel(recommender=recommender, **_registration(settings, name, fetched))
    _log_loaded(loaded)
    return loaded


def _warm_up(recommender: Recommender, label: str) -> None:
    """Recommend once for the documented example, before the version serves anyone.

    The first recommendation pays one-off costs (sklearn's input checks look
    up narwhals' dataframe plugins, about 190 ms here, more on a loaded
    machine): paid here, not by the first request, on both of the
    recommender's paths (:meth:`Recommender.warm_up`). A version that cannot
    recommend fails its load instead of its first request.

    Raises
    ------
    ModelLoadError
        If the example cannot be recommended for.
    """
    example = make_assessment_model().model_validate(EXAMPLE_ASSESSMENT)
    try:
        recommender.warm_up([example])
    except (ValueError, KeyError, TypeError) as err:
        raise ModelLoadError(f"{label} cannot recommend for the example assessment") from err


class ModelHolder(Generic[ModelT]):
    """The model being served, swapped atomically on reload.

    ``current`` is a plain attribute: a reload assigns it once, after the new
    model is fully built, so a request that read it keeps a consistent model.
    A failed load leaves the served model in place and keeps the error for
    ``/readyz`` and the reload response.

    Parameters
    ----------
    settings
        The service settings.
    load
        Builds the model (:func:`load_model` or :func:`load_pathway_model`).
    name
        The registered model's name, for the alias poll and the service log.
    kind
        What the model does ("risk", "pathway"), for answers to clients: they
        learn no registry names.
    """

    def __init__(
        self, settings: Settings, load: Callable[[Settings], ModelT], name: str, kind: str
    ) -> None:
        self.settings = settings
        self.name = name
        self.kind = kind
        self.current: ModelT | None = None
        # Full text for logs and admins; the public reason names only the kind of failure,
        # never registry names, digests, hosts or paths.
        self.last_error: str | None = None
        self.public_reason = "the model is still loading"
        self._load: Callable[[Settings], ModelT] = load
        self._reload_lock = threading.Lock()

    def get(self) -> ModelT:
        """Return the served model.

        Raises
        ------
        ModelUnavailableError
            If no model has loaded (yet).
        """
        model = self.current
        if model is None:
            raise ModelUnavailableError(f"no {self.kind} model loaded: {self.public_reason}")
        return model

    def reload(self) -> ModelT:
        """Load the alias's version and swap it in; on failure keep serving the old one.

        Raises
        ------
        ModelLoadError
            If the new version cannot be loaded (the previous model stays).
        """
        with self._reload_lock:
            try:
                loaded = self._load(self.settings)
            except ModelLoadError as err:
                self.last_error = str(err)
                self.public_reason = (
                    "the model failed its integrity check"
                    if isinstance(err, ModelIntegrityError)
                    else "the last model load failed (see the service log)"
                )
                log.error("model load failed", extra={"model": self.name, "error": str(err)})
                raise
            self.current = loaded
            self.last_error = None
            return loaded
