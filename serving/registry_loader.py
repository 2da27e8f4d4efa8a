"""Fetch the served model from the MLflow registry, check it, and hold it for requests.

The version behind ``models:/NAME@ALIAS`` is resolved, its files are
downloaded, and their digest is compared with the ``desist.artifact_digest``
tag written at registration *before* anything is deserialised: a model whose
files changed since registration is refused.

:func:`load_model` gives the risk model, :func:`load_pathway_model` the
pathway model; :class:`ModelHolder` keeps each one being served. A reload builds the new
model completely and then replaces one reference; a request reads that
reference once, so requests in flight finish on the model they started with.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.errors import ModelIntegrityError, ModelLoadError, ModelUnavailableError
from models.digest import directory_digest
from models.registered import (
    TAG_DIGEST,
    bands_from_tags,
    check_artifact_format,
    check_model_features,
)
from serving.recommender import Recommender
from serving.scorer import Scorer
from serving.settings import Settings

log = logging.getLogger("desist.serving.models")

ModelT = TypeVar("ModelT", "LoadedModel", "LoadedPathwayModel")
_CREDENTIALS = re.compile(r"(://[^:/@\s]+):[^@\s]+@")


def _redact(text: str) -> str:
    """Drop passwords from URLs an error message may quote."""
    return _CREDENTIALS.sub(r"\1:***@", text)


def _figure(tags: dict[str, str], name: str) -> float | None:
    try:
        return float(tags[name])
    except (KeyError, ValueError):
        return None


def _provenance(tags: dict[str, str]) -> dict[str, Any]:
    """Return when, on what data and by which run a version was trained (its tags)."""
    try:
        dataset = json.loads(tags.get("desist.dataset", "null"))
    except ValueError:
        dataset = None
    return {
        "trained_at": tags.get("desist.trained_at"),
        "dataset": dataset,
        "model_card": tags.get("desist.model_card"),
        "run_id": tags.get("desist.run_id"),
    }


def _describe(
    model: LoadedModel | LoadedPathwayModel,
    kind: str,
    details: dict[str, Any],
    metrics: dict[str, float | None],
) -> dict[str, Any]:
    """Return what ``GET /v1/models`` says of a served version: who it is, then its own facts."""
    return {
        "name": model.name,
        "version": model.version,
        "alias": model.alias,
        "kind": kind,
        **details,
        **_provenance(model.tags),
        "metrics": metrics,
        "artifact_digest": model.digest,
        "loaded_at": model.loaded_at.isoformat(timespec="seconds"),
    }


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A registered risk-model version, verified and ready to score."""

    name: str
    version: str
    alias: str
    scorer: Scorer
    digest: str
    tags: dict[str, str]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def describe(self) -> dict[str, Any]:
        """Return what ``GET /v1/models`` says about this version."""
        return _describe(
            self,
            "risk",
            {
                "family": self.tags.get("desist.family"),
                "explanation_method": self.scorer.method,
                "features": list(self.scorer.features),
                "bands": list(self.scorer.bands.cutoffs),
            },
            {
                name: _figure(self.tags, f"desist.{name}")
                for name in ("test_roc_auc", "test_ece", "max_group_calibration_gap")
            },
        )


@dataclass(frozen=True, slots=True)
class LoadedPathwayModel:
    """A registered pathway-model version, verified and ready to recommend."""

    name: str
    version: str
    alias: str
    recommender: Recommender
    digest: str
    tags: dict[str, str]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def describe(self) -> dict[str, Any]:
        """Return what ``GET /v1/models`` says about this version."""
        return _describe(
            self,
            "pathways",
            {
                "family": "doubly robust per-programme effects",
                "features": list(self.recommender.features),
            },
            {
                name: _figure(self.tags, f"desist.{name}")
                for name in ("estimated_policy_value", "estimated_rnr_value")
            },
        )


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
            f"cannot resolve models:/{name}@{settings.model_alias}: {_redact(str(err))}"
        ) from err
    return str(found.version)


@dataclass(frozen=True, slots=True)
class VerifiedVersion:
    """A registered version's deserialised model, after its files matched their digest."""

    model: Any
    version: str
    tags: dict[str, str]
    digest: str


def fetch_verified(settings: Settings, name: str) -> VerifiedVersion:
    """Resolve, download and verify the version behind ``name``'s alias, then deserialise it.

    The digest is checked before anything is unpickled or loaded by skops.

    Raises
    ------
    ModelIntegrityError
        If the files do not match the digest recorded at registration (or
        no digest was recorded).
    ModelLoadError
        If the alias cannot be resolved or the model cannot be read.
    """
    alias = settings.model_alias
    client = registry_client(settings)
    try:
        version = client.get_model_version_by_alias(name, alias)
        location = client.get_model_version_download_uri(name, version.version)
    except MlflowException as err:
        raise ModelLoadError(f"cannot resolve models:/{name}@{alias}: {_redact(str(err))}") from err
    number = str(version.version)
    tags = dict(version.tags)
    expected = tags.get(TAG_DIGEST)
    if not expected:
        raise ModelIntegrityError(name, number, "(no digest recorded)", "unchecked")
    with tempfile.TemporaryDirectory(prefix="desist-model-") as scratch:
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=location,
                    tracking_uri=settings.resolved_tracking_uri(),
                    dst_path=scratch,
                )
            )
        except (MlflowException, OSError) as err:
            raise ModelLoadError(
                f"cannot download {name} version {number}: {_redact(str(err))}"
            ) from err
        found = directory_digest(local)
        if found != expected:
            raise ModelIntegrityError(name, number, expected, found)
        check_artifact_format(local, name, number)  # still before anything is deserialised
        try:
            model = mlflow.sklearn.load_model(str(local))
        except Exception as err:  # deserialisation can fail in many libraries' ways
            raise ModelLoadError(
                f"cannot deserialise {name} version {number}: {type(err).__name__}"
            ) from err
    return VerifiedVersion(model=model, version=number, tags=tags, digest=found)


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
    fetched = fetch_verified(settings, name)
    label = f"{name} version {fetched.version}"
    scorer = Scorer(fetched.model, bands_from_tags(fetched.tags, label), settings.top_reasons)
    check_model_features(label, scorer.features, fetched.tags)
    log.info(
        "loaded model", extra={"model": name, "version": fetched.version, "digest": fetched.digest}
    )
    return LoadedModel(
        name=name,
        version=fetched.version,
        alias=settings.model_alias,
        scorer=scorer,
        digest=fetched.digest,
        tags=fetched.tags,
    )


def load_pathway_model(settings: Settings) -> LoadedPathwayModel:
    """Return the verified pathway model behind the alias, ready to recommend.

    Raises
    ------
    ModelIntegrityError
        If its files do not match the digest recorded at registration.
    ModelLoadError
        If it cannot be resolved or read, or uses an audit-only field.
    """
    name = settings.pathway_model_name
    fetched = fetch_verified(settings, name)
    recommender = Recommender(fetched.model)
    check_model_features(f"{name} version {fetched.version}", recommender.features, fetched.tags)
    log.info(
        "loaded model", extra={"model": name, "version": fetched.version, "digest": fetched.digest}
    )
    return LoadedPathwayModel(
        name=name,
        version=fetched.version,
        alias=settings.model_alias,
        recommender=recommender,
        digest=fetched.digest,
        tags=fetched.tags,
    )


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
