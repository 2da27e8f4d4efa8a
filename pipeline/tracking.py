"""Where runs, artifacts and registered models go.

The embedded default is an SQLite store and a local artifact folder under the
git-ignored working folder ``DESIST_HOME`` (``./.desist``). A team points
``MLFLOW_TRACKING_URI`` at its tracking server (or a PostgreSQL store) instead.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import requests
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from data.errors import DesistError
from models.contract.errors import redact_credentials

DEFAULT_HOME = Path(".desist")
#: What the store's client raises when the store is unreachable or refuses a call.
STORE_FAILURES = (MlflowException, SQLAlchemyError, requests.RequestException)


class TrackingStoreError(DesistError):
    """The MLflow tracking store or registry failed during a job (unreachable, or refused)."""


#: What a logged desist model needs to load and predict: desist itself (its
#: models package holds the estimators), the libraries those import, skops (the
#: format) and mlflow (the flavour).
MODEL_PACKAGES = ("desist", "mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")


def model_requirements() -> list[str]:
    """Return the pip requirements of a logged desist model, pinned to what is installed.

    Stated rather than inferred: MLflow's inference imports the model in a
    subprocess (about 8 s per logged model here) and also lists whatever
    else the training process had loaded (pytest, rich).
    """
    pinned = []
    for name in MODEL_PACKAGES:
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pinned.append(name)  # running from a source tree that was not installed
    return pinned


def desist_home() -> Path:
    """Return the working folder for run state (``DESIST_HOME``, default ``./.desist``)."""
    return Path(os.environ.get("DESIST_HOME", DEFAULT_HOME)).resolve()


@dataclass(frozen=True, slots=True)
class Tracker:
    """An MLflow tracking and registry location.

    Parameters
    ----------
    tracking_uri
        MLflow tracking store (``sqlite:///...``, ``postgresql://...`` or a server URL).
    artifact_root
        Where new experiments keep artifacts; ``None`` lets the server decide.
    """

    tracking_uri: str
    artifact_root: str | None = None

    @classmethod
    def for_home(cls, home: Path) -> Tracker:
        """Return the embedded store under ``home``: SQLite plus a local artifact folder."""
        home.mkdir(parents=True, exist_ok=True)
        return cls(
            tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
            artifact_root=(home / "mlartifacts").as_uri(),
        )

    @classmethod
    def from_environment(cls) -> Tracker:
        """Honour ``MLFLOW_TRACKING_URI``; otherwise the embedded store under ``DESIST_HOME``."""
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if uri:
            return cls(tracking_uri=uri)
        return cls.for_home(desist_home())

    def client(self) -> MlflowClient:
        """Return a client bound to this store (tracking and registry)."""
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it when absent.

        Raises
        ------
        TrackingStoreError
            If the store cannot be reached.
        """
        with self.reporting_failures():
            client = self.client()
            found = client.get_experiment_by_name(name)
            if found is not None:
                return str(found.experiment_id)
            location = None if self.artifact_root is None else f"{self.artifact_root}/{name}"
            return str(client.create_experiment(name, artifact_location=location))

    @contextmanager
    def reporting_failures(self) -> Iterator[None]:
        """Turn a failure of the store into a :class:`TrackingStoreError` naming it.

        A job registers its model last, so a job that fails this way has
        registered nothing; its run may stay RUNNING if the store went away
        before it could be marked FAILED.
        """
        try:
            yield
        except STORE_FAILURES as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            store, reason = (redact_credentials(t) for t in (self.tracking_uri, reason))
            raise TrackingStoreError(f"the MLflow tracking store {store} failed: {reason}") from err

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Point MLflow's fluent API at this store for the duration of a job.

        The fluent API (``mlflow.start_run``, ``log_model``) keeps its store
        in process state and, for subprocesses, in ``MLFLOW_TRACKING_URI``;
        both are put back afterwards so that a job never leaves the process
        pointed at its store (a later ``from_environment`` would read it).
        """
        previous = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        try:
            with self.reporting_failures():
                yield
        finally:
            mlflow.set_registry_uri(None)  # type: ignore[arg-type]  # None means "unset"
            mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None unsets

    def get_run(self, run_id: str) -> Run:
        """Return a run by id."""
        return self.client().get_run(run_id)

    def ui_command(self) -> str:
        """Return the shell command that opens the MLflow UI on this store."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"open {self.tracking_uri}"
        return f".venv/bin/mlflow ui --backend-store-uri '{self.tracking_uri}'"
