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
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

from models.contract.artifact import directory_digest
from models.contract.tags import VersionTags


def logged_model_digest(model_uri: str) -> str:
    """Return the content digest of the logged model at ``model_uri`` (active tracking store)."""
    with tempfile.TemporaryDirectory(prefix="desist-digest-") as scratch:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=scratch)
        return directory_digest(Path(local))


def _logged_model_id(model_uri: str) -> str | None:
    """Return the logged model id in a ``models:/m-...`` URI (``log_model`` gives one), or None."""
    if not model_uri.startswith("models:/m-"):
        return None
    model_id = model_uri.removeprefix("models:/")
    return model_id if "/" not in model_id else None


def register_version(model_uri: str, name: str, tags: VersionTags) -> str:
    """Register the model at ``model_uri`` as a new version of ``name``; return its number.

    Only the version and its tags are written (through MLflow's active
    registry); nothing is logged to the run. The client API is used rather
    than ``mlflow.register_model``, which prints "Successfully registered
    model" and "Created version" to standard error on every call: desist's
    jobs print their own summary, and the noise buried it.
    """
    client = MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    # The store links the version to the logged model's source run from its id.
    version = client.create_model_version(
        name, model_uri, tags=tags.to_mlflow_tags(), model_id=_logged_model_id(model_uri)
    )
    return str(version.version)
