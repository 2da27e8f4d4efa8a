"""Register a logged model as a new version of a registered model, with its typed tags.

Both training jobs register through :func:`register_version`, so every
version carries the tags :class:`models.contract.tags.VersionTags` describes,
written the same way. :func:`logged_model_digest` gives the digest those tags
record, computed on the files exactly as the registry will serve them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow

from models.contract.artifact import directory_digest
from models.contract.tags import VersionTags


def logged_model_digest(model_uri: str) -> str:
    """Return the content digest of the logged model at ``model_uri`` (active tracking store)."""
    with tempfile.TemporaryDirectory(prefix="desist-digest-") as scratch:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=scratch)
        return directory_digest(Path(local))


def register_version(model_uri: str, name: str, tags: VersionTags) -> str:
    """Register the model at ``model_uri`` as a new version of ``name``; return its number.

    Only the version and its tags are written (through MLflow's active
    registry); nothing is logged to the run.
    """
    version = mlflow.register_model(model_uri, name, tags=tags.to_mlflow_tags())
    return str(version.version)
