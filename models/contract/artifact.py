"""A saved model's files: their content digest, their format, and the types they may hold.

The digest covers every file's relative path and bytes, in sorted order, so
a changed, added or removed file changes it. MLflow's own registry note
(``registered_model_meta``), which MLflow may rewrite after registration, is
left out.

A desist model is an MLflow sklearn model saved with skops. skops refuses to
build any type it is not told to trust; the types desist's own models need
are :data:`TRUSTED_TYPES`, named exactly (module and class). The list a
model's ``MLmodel`` gives skops is never used: :func:`load_skops_model` reads
the types the skops file itself holds, refuses any outside that set, and
trusts only those.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import skops.io
import yaml

from models.contract.errors import ModelLoadError, UntrustedArtifactError

#: Every type beyond skops' own defaults that a model desist builds holds: the
#: risk families (scorecard, boosting, their blend, all in the calibrated wrapper)
#: and the pathway model. Exact names: a prefix such as ``models.`` would also
#: trust any installed package of that name. ``tests/models/contract`` fits each
#: model and checks that this set is exactly what they need.
TRUSTED_TYPES = frozenset(
    {
        "models.average.LogOddsAverage",
        "models.calibration.ScoreCalibratedClassifier",
        "models.encoding.AssessmentEncoder",
        "models.pathways.PathwayEffectModel",
        "models.pathways._Nuisance",
        "models.scorecard.BinnedLogisticScorecard",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)

#: Files MLflow writes into a model folder after it was logged.
UNDIGESTED = frozenset({"registered_model_meta"})

#: How every zip file (so every skops file) begins; a pickle begins otherwise.
_ZIP_MAGIC = b"PK\x03\x04"


def directory_digest(root: Path) -> str:
    """Return ``sha256:<hex>`` of all model files under ``root``."""
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in UNDIGESTED)
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"


def skops_trusted_types(model: object) -> list[str]:
    """Return the types skops must trust to load ``model``, all of them desist's own.

    Raises
    ------
    TypeError
        If the model holds a type outside :data:`TRUSTED_TYPES`.
    """
    found = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    refused = [t for t in found if t not in TRUSTED_TYPES]
    if refused:
        raise TypeError(f"model holds types outside the trusted packages: {refused}")
    return list(found)


def _sklearn_flavor(model_dir: Path, where: str) -> dict[str, Any]:
    """Return the sklearn flavor of the ``MLmodel`` description (YAML, safe loader)."""
    try:
        description: Any = yaml.safe_load((model_dir / "MLmodel").read_text())
        flavor = description["flavors"]["sklearn"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise UntrustedArtifactError(f"{where}: no readable sklearn flavor in MLmodel") from err
    if not isinstance(flavor, dict):
        raise UntrustedArtifactError(f"{where}: malformed sklearn flavor in MLmodel")
    return flavor


def check_artifact_format(model_dir: Path, name: str, version: str) -> None:
    """Refuse model files whose description asks for an unsafe deserialisation.

    Reads only the ``MLmodel`` description, never the model itself.

    Raises
    ------
    UntrustedArtifactError
        If the model is not an sklearn flavor saved with skops, bundles code
        (which MLflow would put on ``sys.path``), or lists for skops a type
        outside :data:`TRUSTED_TYPES`.
    """
    where = f"{name} version {version}"
    flavor = _sklearn_flavor(model_dir, where)
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
    refused = sorted(t for t in trusted if t not in TRUSTED_TYPES)
    if refused:
        raise UntrustedArtifactError(f"{where}: asks skops to trust {refused}")


def _skops_file(model_dir: Path, where: str) -> Path:
    """Return the skops file the description names, refusing one outside the model folder."""
    name = _sklearn_flavor(model_dir, where).get("pickled_model", "model.skops")
    if not isinstance(name, str):
        raise UntrustedArtifactError(f"{where}: malformed pickled_model in MLmodel")
    root = model_dir.resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise UntrustedArtifactError(f"{where}: its model file {name!r} is outside its folder")
    return path


def load_skops_model(model_dir: Path, where: str) -> Any:
    """Deserialise the skops file of a checked model folder, trusting only desist's types.

    Call :func:`check_artifact_format` first. The types are read from the
    file itself (skops builds nothing while listing them); any outside
    :data:`TRUSTED_TYPES` refuses the file, whatever ``MLmodel`` says.

    Raises
    ------
    UntrustedArtifactError
        If the file is not a skops (zip) file, or holds a type desist does not build.
    ModelLoadError
        If the file is damaged or cannot be built.
    """
    path = _skops_file(model_dir, where)
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_ZIP_MAGIC))
    except OSError as err:
        raise ModelLoadError(f"cannot deserialise {where}: {type(err).__name__}") from err
    if magic != _ZIP_MAGIC:
        raise UntrustedArtifactError(f"{where}: its model file is not a skops file (a pickle?)")
    try:
        present = skops.io.get_untrusted_types(file=path)
    except Exception as err:  # a damaged zip or schema fails in zipfile's, json's or skops' ways
        raise ModelLoadError(f"cannot deserialise {where}: {type(err).__name__}") from err
    refused = sorted(set(present) - TRUSTED_TYPES)
    if refused:
        raise UntrustedArtifactError(f"{where}: its skops file holds untrusted types {refused}")
    try:
        return skops.io.load(path, trusted=sorted(present))
    except Exception as err:  # building can fail in many libraries' ways
        raise ModelLoadError(f"cannot deserialise {where}: {type(err).__name__}") from err
