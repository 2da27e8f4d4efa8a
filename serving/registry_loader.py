"""Fetch the served model from the MLflow registry, check it, and hold it for requests.

The version behind ``models:/NAME@ALIAS`` is resolved, its files are
downloaded, and their digest is compared with the ``desist.artifact_digest``
tag written at registration *before* anything is deserialised: a model whose
files changed since registration is refused.

:class:`ModelHolder` keeps the model being served. A reload builds the new
model completely and then replaces one reference; a request reads that
reference once, so requests in flight finish on the model they started with.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.errors import ModelIntegrityError, ModelLoadError, ModelUnavailableError
from data.schema import NEVER_FEATURES
from models.bands import RiskBands
from models.digest import directory_digest
from serving.scorer import Scorer
from serving.security import check_artifact_format
from serving.settings import Settings

log = logging.getLogger("desist.serving.models")

TAG_DIGEST = "desist.artifact_digest"
_CREDENTIALS = re.compile(r"(://[^:/@\s]+):[^@\s]+@")


def _redact(text: str) -> str:
    """Drop passwords from URLs an error message may quote."""
    return _CREDENTIALS.sub(r"\1:***@", text)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A registered model version, verified and ready to score."""

    name: str
    version: str
    alias: str
    scorer: Scorer
    digest: str
    tags: dict[str, str]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def describe(self) -> dict[str, Any]:
        """Return what ``GET /v1/models`` says about this version."""
        tags = self.tags

        def figure(name: str) -> float | None:
            try:
                return float(tags[name])
            except (KeyError, ValueError):
                return None

        try:
            dataset = json.loads(tags.get("desist.dataset", "null"))
        except ValueError:
            dataset = None
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "family": tags.get("desist.family"),
            "explanation_method": self.scorer.method,
            "features": list(self.scorer.features),
            "bands": list(self.scorer.bands.cutoffs),
            "trained_at": tags.get("desist.trained_at"),
            "dataset": dataset,
            "metrics": {
                "test_roc_auc": figure("desist.test_roc_auc"),
                "test_ece": figure("desist.test_ece"),
                "max_group_calibration_gap": figure("desist.max_group_calibration_gap"),
            },
            "model_card": tags.get("desist.model_card"),
            "run_id": tags.get("desist.run_id"),
            "artifact_digest": self.digest,
            "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
        }


def registry_client(settings: Settings) -> MlflowClient:
    """Return a client on the tracking store and registry the settings name."""
    uri = settings.resolved_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def champion_version(settings: Settings) -> str:
    """Return the version the alias points at now (cheap: no download).

    Raises
    ------
    ModelLoadError
        If the registry cannot be read or the alias is not set.
    """
    try:
        found = registry_client(settings).get_model_version_by_alias(
            settings.model_name, settings.model_alias
        )
    except MlflowException as err:
        raise ModelLoadError(
            f"cannot resolve models:/{settings.model_name}@{settings.model_alias}: "
            f"{_redact(str(err))}"
        ) from err
    return str(found.version)


def load_model(settings: Settings) -> LoadedModel:
    """Resolve, download, verify and deserialise the version behind the alias.

    Raises
    ------
    ModelIntegrityError
        If the files do not match the digest recorded at registration (or
        no digest was recorded).
    ModelLoadError
        If the alias cannot be resolved or the model cannot be read or scored.
    """
    name, alias = settings.model_name, settings.model_alias
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
    try:
        bands = RiskBands(cutoffs=tuple(json.loads(tags.get("desist.bands", "[0.3, 0.5, 0.7]"))))
    except ValueError as err:
        raise ModelLoadError(f"{name} version {number}: bad desist.bands tag") from err
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
    scorer = Scorer(model, bands, settings.top_reasons)
    _check_features(name, number, scorer.features, tags)
    log.info("loaded model", extra={"model": name, "version": number, "digest": found})
    return LoadedModel(
        name=name, version=number, alias=alias, scorer=scorer, digest=found, tags=tags
    )


def _check_features(
    name: str, number: str, features: tuple[str, ...], tags: dict[str, str]
) -> None:
    """Refuse a model that uses a forbidden or audit-only field, or disagrees with its tags.

    The registry gates read the tags; this reads the artifact itself, so a
    version registered with wrong tags, or forced past the gates, still
    cannot score with ethnicity.
    """
    try:
        audit_only = set(json.loads(tags.get("desist.audit_only", "[]")))
        declared = json.loads(tags["desist.features"])
    except (KeyError, ValueError) as err:
        raise ModelLoadError(f"{name} version {number}: missing or bad feature tags") from err
    forbidden = sorted(set(features) & (set(NEVER_FEATURES) | audit_only))
    if forbidden:
        raise ModelLoadError(f"{name} version {number} uses audit-only fields {forbidden}")
    if list(features) != list(declared):
        raise ModelLoadError(f"{name} version {number}: its features differ from its tags")


class ModelHolder:
    """The model being served, swapped atomically on reload.

    ``current`` is a plain attribute: a reload assigns it once, after the new
    model is fully built, so a request that read it keeps a consistent model.
    A failed load leaves the served model in place and keeps the error for
    ``/readyz`` and the reload response.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current: LoadedModel | None = None
        # Full text for logs and admins; the public reason names only the kind of failure,
        # never registry names, digests, hosts or paths.
        self.last_error: str | None = None
        self.public_reason = "the model is still loading"
        self._reload_lock = threading.Lock()

    def get(self) -> LoadedModel:
        """Return the served model.

        Raises
        ------
        ModelUnavailableError
            If no model has loaded (yet).
        """
        model = self.current
        if model is None:
            raise ModelUnavailableError(f"no model loaded: {self.public_reason}")
        return model

    def reload(self) -> LoadedModel:
        """Load the alias's version and swap it in; on failure keep serving the old one.

        Raises
        ------
        ModelLoadError
            If the new version cannot be loaded (the previous model stays).
        """
        with self._reload_lock:
            try:
                loaded = load_model(self.settings)
            except ModelLoadError as err:
                self.last_error = str(err)
                self.public_reason = (
                    "the model failed its integrity check"
                    if isinstance(err, ModelIntegrityError)
                    else "the last model load failed (see the service log)"
                )
                log.error("model load failed", extra={"error": str(err)})
                raise
            self.current = loaded
            self.last_error = None
            return loaded
