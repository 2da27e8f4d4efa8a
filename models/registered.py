"""Fetch a risk model by MLflow URI, check its files, and read what its registration recorded.

A registered version carries, as tags written at registration, the digest of
its files, its risk bands and its feature lists. :func:`load_risk_model`
resolves a URI, downloads the files, and compares their digest with the
recorded one *before* anything is deserialised: a model whose files changed
since registration is refused.

URIs:

- ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION``: a registered version;
  its digest tag is required.
- ``runs:/RUN_ID/PATH``: a model logged by a run. The run's registered
  versions are looked up: when one records the digest of these files, they
  are verified against it and its tags are used. A run whose model was never
  registered has no digest to check against; it is refused unless the
  caller allows unverified models, and then scored with the default bands.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.errors import ModelIntegrityError, ModelLoadError, UntrustedArtifactError
from data.schema import NEVER_FEATURES
from models.bands import RiskBands
from models.calibration import ScoreCalibratedClassifier
from models.digest import TRUSTED_TYPE_PREFIXES, directory_digest

# Tags written on every registered version (pipeline/registry.py writes them).
TAG_DIGEST = "desist.artifact_digest"
TAG_BANDS = "desist.bands"
TAG_FEATURES = "desist.features"
TAG_AUDIT_ONLY = "desist.audit_only"

_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
_RUN = re.compile(r"^runs:/(?P<run_id>[0-9a-zA-Z]+)/(?P<path>.+)$")


@dataclass(frozen=True, slots=True)
class LoadedRiskModel:
    """A risk model read from MLflow, with the facts of its registration.

    ``name`` and ``version`` are those of the registered version the files
    were verified against (``None`` for an unverified run model);
    ``verified`` says whether the digest was checked against a registration.
    """

    uri: str
    model: ScoreCalibratedClassifier
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


def _resolve(client: MlflowClient, uri: str) -> tuple[str, list[ModelVersion]]:
    """Return where to download ``uri`` from, and the registered versions that may vouch for it."""
    registered = _REGISTERED.match(uri)
    run = _RUN.match(uri)
    try:
        if registered:
            name = registered["name"]
            if registered["alias"]:
                version = client.get_model_version_by_alias(name, registered["alias"])
            else:
                version = client.get_model_version(name, registered["version"])
            return client.get_model_version_download_uri(name, version.version), [version]
        if run:
            client.get_run(run["run_id"])
            return uri, list(client.search_model_versions(f"run_id = '{run['run_id']}'"))
    except MlflowException as err:
        raise ModelLoadError(f"cannot resolve {uri}: {err.message}") from err
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


def check_artifact_format(model_dir: Path, name: str, version: str) -> None:
    """Refuse model files that would be deserialised unsafely.

    Reads only the ``MLmodel`` description (YAML, safe loader), never the
    model itself.

    Raises
    ------
    UntrustedArtifactError
        If the model is not an sklearn flavor saved with skops, bundles code
        (which MLflow would put on ``sys.path``), or lets skops trust a type
        outside :data:`models.digest.TRUSTED_TYPE_PREFIXES`.
    """
    where = f"{name} version {version}"
    try:
        description: Any = yaml.safe_load((model_dir / "MLmodel").read_text())
        flavor = description["flavors"]["sklearn"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise UntrustedArtifactError(f"{where}: no readable sklearn flavor in MLmodel") from err
    if not isinstance(flavor, dict):
        raise UntrustedArtifactError(f"{where}: malformed sklearn flavor in MLmodel")
    serialization = flavor.get("serialization_format")
    if serialization != "skops":
        raise UntrustedArtifactError(
            f"{where}: serialised as {serialization!r}; only skops is loaded "
            "(pickle runs the file's code on load)"
        )
    if flavor.get("code"):
        raise UntrustedArtifactError(f"{where}: bundles code, which would run on load")
    trusted = flavor.get("skops_trusted_types") or []
    if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
        raise UntrustedArtifactError(f"{where}: malformed skops_trusted_types")
    refused = sorted(t for t in trusted if not t.startswith(TRUSTED_TYPE_PREFIXES))
    if refused:
        raise UntrustedArtifactError(f"{where}: asks skops to trust {refused}")


def load_risk_model(
    uri: str, *, tracking_uri: str, allow_unverified: bool = False
) -> LoadedRiskModel:
    """Resolve, download, verify and deserialise the risk model at ``uri``.

    Parameters
    ----------
    uri
        ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/RUN_ID/PATH``.
    tracking_uri
        The MLflow tracking store and registry. MLflow resolves a ``runs:/``
        model's files through the active store, so callers also make it
        active (``pipeline.tracking.Tracker.activate``).
    allow_unverified
        Score with a ``runs:/`` model that was never registered (no digest to
        check); its files' digest is still computed and reported.

    Raises
    ------
    ModelIntegrityError
        If the files do not match the digest recorded at registration.
    ModelLoadError
        If the URI cannot be resolved, the model read, or it uses a
        forbidden field; or it was never registered and unverified models
        are not allowed.
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
            raise ModelLoadError(f"cannot download {uri}: {err}") from err
        found = directory_digest(local)
        voucher = _voucher(uri, found, versions, allow_unverified)
        # Still before anything is deserialised: skops reads its allow-list from the files.
        check_artifact_format(
            local,
            uri if voucher is None else voucher.name,
            "?" if voucher is None else voucher.version,
        )
        try:
            model = mlflow.sklearn.load_model(str(local))
        except Exception as err:  # deserialisation can fail in many libraries' ways
            raise ModelLoadError(f"cannot deserialise {uri}: {type(err).__name__}") from err
    if not isinstance(model, ScoreCalibratedClassifier):
        raise ModelLoadError(f"{uri} is a {type(model).__name__}, not a calibrated risk model")
    tags = {} if voucher is None else dict(voucher.tags)
    label = uri if voucher is None else f"{voucher.name} version {voucher.version}"
    pipeline = getattr(model, "estimator", None)
    encoder = getattr(pipeline, "named_steps", {}).get("encode")
    check_model_features(label, tuple(getattr(encoder, "features_", ())), tags)
    return LoadedRiskModel(
        uri=uri,
        model=model,
        bands=bands_from_tags(tags, label),
        digest=found,
        verified=voucher is not None,
        name=None if voucher is None else voucher.name,
        version=None if voucher is None else str(voucher.version),
        tags=tags,
    )
