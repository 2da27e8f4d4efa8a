"""Fetch a model version by MLflow URI, verified, for the service and for batch scoring alike.

:func:`fetch_model` resolves a URI, downloads the files, and compares their
digest with the one recorded at registration *before* anything is
deserialised; then checks the format and the types the file holds
(:mod:`models.contract.artifact`), builds the model, checks it is of the
expected kind and that it uses no forbidden or audit-only field. Every error
message has the passwords of URLs cut out.

URIs:

- ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION``: a registered version;
  its digest tag is required.
- ``runs:/RUN_ID/PATH``: a model logged by a run. The run's registered
  versions are looked up: when one records the digest of these files, they
  are verified against it and its tags are used. A run whose model was never
  registered has no digest to check against; it is refused unless the
  caller allows unverified models.

No URI may hold a ``..`` segment or an absolute path: a model is read from
the artifact store, never from elsewhere on the machine.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import unquote

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.schema import NEVER_FEATURES
from models.bands import RiskBands
from models.calibration import ScoreCalibratedClassifier
from models.contract.artifact import check_artifact_format, directory_digest, load_skops_model
from models.contract.errors import ModelIntegrityError, ModelLoadError, redact_credentials
from models.contract.tags import TAG_AUDIT_ONLY, TAG_BANDS, TAG_DIGEST, TAG_FEATURES
from models.pathways import PathwayEffectModel

ModelT = TypeVar("ModelT", ScoreCalibratedClassifier, PathwayEffectModel)

_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
_RUN = re.compile(r"^runs:/(?P<run_id>[0-9a-zA-Z]+)/(?P<path>.+)$")
_KINDS = {ScoreCalibratedClassifier: "calibrated risk model", PathwayEffectModel: "pathway model"}


@dataclass(frozen=True, slots=True)
class FetchedModel(Generic[ModelT]):
    """A model read from MLflow and verified, with the facts of its registration.

    ``name`` and ``version`` are those of the registered version the files
    were verified against (``None`` for an unverified run model);
    ``verified`` says whether the digest was checked against a registration;
    ``tags`` are that version's tags (empty when unverified), ``bands`` the
    risk bands they record (the defaults when none are).
    """

    uri: str
    model: ModelT
    bands: RiskBands
    digest: str
    verified: bool
    name: str | None
    version: str | None
    tags: dict[str, str]

    @property
    def label(self) -> str:
        """Return ``NAME version N``, or the URI for an unregistered model."""
        return self.uri if self.version is None else f"{self.name} version {self.version}"


def check_model_uri(uri: str) -> None:
    """Refuse a URI with a ``..`` segment or an absolute path, wherever it would lead.

    Raises
    ------
    ModelLoadError
        Naming the URI.
    """
    scheme, separator, rest = uri.partition(":/")
    if scheme not in ("models", "runs") or not separator:
        return  # not a model URI at all: _resolve says so
    path = unquote(rest).replace("\\", "/")
    if ".." in path.split("/") or path.startswith("/") or "//" in path:
        raise ModelLoadError(
            f"{uri!r} leaves the artifact store ('..' or an absolute path); refusing it"
        )


def _resolve(client: MlflowClient, uri: str) -> tuple[str, list[ModelVersion]]:
    """Return where to download ``uri`` from, and the registered versions that may vouch for it."""
    check_model_uri(uri)
    registered = _REGISTERED.match(uri)
    run = _RUN.match(uri)
    try:
        if registered:
            name = registered["name"]
            if registered["alias"]:
                version = client.get_model_version_by_alias(name, registered["alias"])
            else:
                version = client.get_model_version(name, registered["version"])
            if not version.tags.get(TAG_DIGEST):
                raise ModelIntegrityError(
                    name, str(version.version), "(no digest recorded)", "unchecked"
                )
            return client.get_model_version_download_uri(name, version.version), [version]
        if run:
            client.get_run(run["run_id"])
            return uri, list(client.search_model_versions(f"run_id = '{run['run_id']}'"))
    except MlflowException as err:
        raise ModelLoadError(f"cannot resolve {uri}: {redact_credentials(str(err))}") from err
    raise ModelLoadError(
        f"{uri!r} is not a model URI desist can score with: use models:/NAME@ALIAS, "
        "models:/NAME/VERSION or runs:/RUN_ID/PATH"
    )


def _voucher(
    uri: str, found: str, versions: list[ModelVersion], allow_unverified: bool
) -> ModelVersion | None:
    """Return the registered version whose recorded digest the files match.

    Raises
    ------
    ModelIntegrityError
        If the model was registered but its files match no recorded digest.
    ModelLoadError
        If it was never registered and unverified models are not allowed.
    """
    for version in versions:
        if version.tags.get(TAG_DIGEST) == found:
            return version
    if versions:
        newest = max(versions, key=lambda v: int(v.version))
        expected = newest.tags.get(TAG_DIGEST) or "(no digest recorded)"
        raise ModelIntegrityError(newest.name, str(newest.version), expected, found)
    if allow_unverified:
        return None
    raise ModelLoadError(
        f"{uri} was never registered, so there is no recorded digest to verify its files "
        f"({found}) against: register it, or allow unverified models (--allow-unverified)"
    )


def bands_from_tags(tags: dict[str, str], label: str) -> RiskBands:
    """Return the bands a version was registered with (the defaults when none are recorded).

    Raises
    ------
    ModelLoadError
        If the tag is present but not three increasing probabilities.
    """
    if TAG_BANDS not in tags:
        return RiskBands()
    try:
        return RiskBands(cutoffs=tuple(json.loads(tags[TAG_BANDS])))
    except ValueError as err:
        raise ModelLoadError(f"{label}: bad {TAG_BANDS} tag") from err


def model_features(model: ScoreCalibratedClassifier | PathwayEffectModel) -> tuple[str, ...]:
    """Return the fields a fitted model reads, from the model itself (not from its tags)."""
    if isinstance(model, PathwayEffectModel):
        return tuple(model.features)
    encoder = getattr(getattr(model, "estimator", None), "named_steps", {}).get("encode")
    return tuple(getattr(encoder, "features_", ()))


def check_model_features(label: str, features: tuple[str, ...], tags: dict[str, str]) -> None:
    """Refuse a model that uses a forbidden or audit-only field, or disagrees with its tags.

    The registry gates read the tags; this reads the artifact itself, so a
    version registered with wrong tags, or forced past the gates, still
    cannot score with ethnicity. An unregistered model has no tags: only the
    schema's forbidden fields are checked.

    Raises
    ------
    ModelLoadError
        Naming the offending fields.
    """
    try:
        audit_only = set(json.loads(tags.get(TAG_AUDIT_ONLY, "[]")))
        declared = json.loads(tags[TAG_FEATURES]) if tags else list(features)
    except (KeyError, ValueError) as err:
        raise ModelLoadError(f"{label}: missing or bad feature tags") from err
    forbidden = sorted(set(features) & (set(NEVER_FEATURES) | audit_only))
    if forbidden:
        raise ModelLoadError(f"{label} uses audit-only fields {forbidden}")
    if list(features) != list(declared):
        raise ModelLoadError(f"{label}: its features differ from its tags")


def fetch_model(
    uri: str, expect: type[ModelT], *, tracking_uri: str, allow_unverified: bool = False
) -> FetchedModel[ModelT]:
    """Resolve, download, verify and deserialise the model at ``uri``.

    Parameters
    ----------
    uri
        ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/RUN_ID/PATH``.
    expect
        The kind of model: ``ScoreCalibratedClassifier`` (risk) or
        ``PathwayEffectModel``.
    tracking_uri
        The MLflow tracking store and registry. MLflow resolves a ``runs:/``
        model's files through the active store, so callers of such URIs
        also make it active (``pipeline.tracking.Tracker.activate``).
    allow_unverified
        Accept a ``runs:/`` model that was never registered (no digest to
        check); its files' digest is still computed and reported.

    Raises
    ------
    ModelIntegrityError
        If the files do not match the digest recorded at registration (or
        none was recorded).
    UntrustedArtifactError
        If the files would be deserialised unsafely (not skops, bundled
        code, a type desist does not build).
    ModelLoadError
        If the URI is refused or cannot be resolved, the model cannot be
        read, is of another kind or uses a forbidden field; or it was never
        registered and unverified models are not allowed.
    """
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    location, versions = _resolve(client, uri)
    with tempfile.TemporaryDirectory(prefix="desist-model-") as scratch:
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=location, tracking_uri=tracking_uri, dst_path=scratch
                )
            )
        except (MlflowException, OSError) as err:
            raise ModelLoadError(f"cannot download {uri}: {redact_credentials(str(err))}") from err
        found = directory_digest(local)
        voucher = _voucher(uri, found, versions, allow_unverified)
        label = uri if voucher is None else f"{voucher.name} version {voucher.version}"
        # Still before anything is deserialised: the format, then the types the file holds.
        check_artifact_format(
            local,
            uri if voucher is None else voucher.name,
            "?" if voucher is None else str(voucher.version),
        )
        model = load_skops_model(local, label)
    if not isinstance(model, expect):
        raise ModelLoadError(f"{uri} is a {type(model).__name__}, not a {_KINDS[expect]}")
    tags = {} if voucher is None else dict(voucher.tags)
    check_model_features(label, model_features(model), tags)
    return FetchedModel(
        uri=uri,
        model=model,
        bands=bands_from_tags(tags, label),
        digest=found,
        verified=voucher is not None,
        name=None if voucher is None else voucher.name,
        version=None if voucher is None else str(voucher.version),
        tags=tags,
    )
