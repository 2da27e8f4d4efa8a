"""A registry with one trained, promoted risk model, and service apps around it."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from data.schema import ASSESSMENT_FIELDS, NEVER_FEATURES, Kind
from data.synthetic import SynthConfig, generate_cohort
from models.contract.artifact import directory_digest
from models.contract.tags import CHAMPION, TAG_DIGEST
from models.risk import ScorecardSettings
from pipeline.config import (
    DatasetConfig,
    GateConfig,
    PathwayGateConfig,
    PathwayModelConfig,
    PathwayTrainConfig,
)
from pipeline.registry import promote
from pipeline.tracking import Tracker
from pipeline.train_pathways import train as train_pathways
from pipeline.train_risk import train
from serving.app import create_app
from serving.commands import create_key
from serving.settings import Settings
from tests.pipeline.conftest import small_config

MODEL = "desist-risk"
LOOSE_GATES = GateConfig(auc_tolerance=1.0, max_ece=1.0, max_group_calibration_gap=1.0)


@dataclass(frozen=True)
class Store:
    """A registry home with version 1 of desist-risk as champion."""

    home: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def add_version(self, **tag_changes: str) -> str:
        """Register the champion's files again as a new version (optionally with changed tags)."""
        client = self.client()
        current = client.get_model_version(MODEL, "1")
        tags = {**current.tags, **tag_changes}
        # The files' own location: a models:/ source would be resolved through MLflow's
        # process-global tracking URI.
        location = client.get_model_version_download_uri(MODEL, "1")
        created = client.create_model_version(
            MODEL, source=location, run_id=current.run_id, tags=tags
        )
        return str(created.version)

    def add_version_from(self, files: Path, *, retag: bool = False) -> str:
        """Register the model files in ``files`` as a new version with the champion's tags.

        With ``retag`` the digest tag is recomputed for the new files (as if
        whoever changed them could also write the registry); otherwise it is
        the champion's, which the changed files no longer match.
        """
        client = self.client()
        current = client.get_model_version(MODEL, "1")
        tags = dict(current.tags)
        if retag:
            tags[TAG_DIGEST] = directory_digest(files)
        created = client.create_model_version(
            MODEL, source=files.as_uri(), run_id=current.run_id, tags=tags
        )
        return str(created.version)

    def copy_champion_files(self, to: Path) -> Path:
        """Copy version 1's model files to ``to`` (to tamper with them)."""
        location = self.client().get_model_version_download_uri(MODEL, "1")
        source = Path(location.removeprefix("file://"))
        shutil.copytree(source, to)
        return to

    def set_champion(self, version: str) -> None:
        self.client().set_registered_model_alias(MODEL, CHAMPION, version)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """One scorecard trained on the small config and promoted (a few seconds, once)."""
    home = tmp_path_factory.mktemp("serving-home")
    tracker = Tracker.for_home(home)
    result = train(small_config(models=(ScorecardSettings(),)), tracker=tracker)
    decision = promote(tracker, MODEL, result.version, LOOSE_GATES, (), actor="tests")
    assert decision.promoted
    return Store(home)


@pytest.fixture(scope="session")
def pathway_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A registry with a risk champion and a desist-pathways champion (small, seeded)."""
    home = tmp_path_factory.mktemp("serving-pathways-home")
    tracker = Tracker.for_home(home)
    risk = train(small_config(models=(ScorecardSettings(),)), tracker=tracker)
    assert promote(tracker, MODEL, risk.version, LOOSE_GATES, (), actor="tests").promoted
    config = PathwayTrainConfig(
        dataset=DatasetConfig(name="tiny", synthetic=SynthConfig(rows=12_000, seed=5)),
        model=PathwayModelConfig(max_iter=60),
    )
    pathways = train_pathways(config, tracker=tracker)
    gates = PathwayGateConfig(min_gain_over_rnr=-1.0)
    decision = promote(
        tracker, "desist-pathways", pathways.version, gates, NEVER_FEATURES, actor="tests"
    )
    assert decision.promoted
    return Store(home)


@pytest.fixture
def store(trained_store: Store, tmp_path: Path) -> Store:
    """A private copy of the registry: a test may add versions and move the alias.

    Artifacts are not copied: the copied registry still points at the shared
    files, which no test changes.
    """
    home = tmp_path / "registry"
    home.mkdir()
    shutil.copy2(trained_store.home / "mlflow.db", home / "mlflow.db")
    return Store(home)


def make_settings(store: Store, tmp_path: Path, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "home": tmp_path / "service-home",
        "tracking_uri": store.tracking_uri,
        "database_url": f"sqlite:///{tmp_path / 'service.db'}",
        # Tests hammer the service from one address; the limits have their own tests.
        "rate_limit_per_second": 0,
        "unverified_per_second": 0,
    }
    return Settings(**{**base, **changes})


@pytest.fixture
def settings(trained_store: Store, tmp_path: Path) -> Settings:
    return make_settings(trained_store, tmp_path)


@dataclass(frozen=True)
class Service:
    """A running app under the test client, with one key per scope."""

    client: TestClient
    settings: Settings
    score_key: str
    admin_key: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.score_key}"}

    def score(self, assessments: list[dict[str, Any]], key: str | None = None) -> Any:
        return self.client.post(
            "/v1/risk-scores", json={"assessments": assessments}, headers=self.headers(key)
        )


def start_service(
    settings: Settings, before_start: Callable[[], object] | None = None
) -> Iterator[Service]:
    """Create a key per scope, run ``before_start`` (a fault to inject), then start the app."""
    score_key = create_key("case-system", "score", settings=settings)
    admin_key = create_key("operator", "admin", settings=settings)
    if before_start is not None:
        before_start()
    with TestClient(create_app(settings)) as client:
        yield Service(client, settings, score_key, admin_key)


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    yield from start_service(settings)


def assessment(**changes: Any) -> dict[str, Any]:
    """A valid assessment with a few needs items left out (not assessed)."""
    base: dict[str, Any] = {
        "subject_ref": "case-0001",
        "age": 27,
        "age_first_sanction": 15,
        "total_sanctions": 6,
        "juvenile_sanctions": 2,
        "offence_category": "burglary",
        "custodial_history": 1,
        "months_offence_free": 4.5,
        "drug_misuse": 2,
        "unemployed": 1,
        "procriminal_attitudes": 1,
        "sex": "male",
    }
    return {**base, **changes}


@pytest.fixture(scope="session")
def cohort_assessments() -> list[dict[str, Any]]:
    """300 varied assessments as a case system would send them (missing values omitted)."""
    cohort, _ = generate_cohort(SynthConfig(rows=300, seed=5))
    out = []
    for i, row in enumerate(cohort.to_dict("records")):
        item: dict[str, Any] = {"subject_ref": f"synthetic-{i}"}
        for spec in ASSESSMENT_FIELDS[1:]:
            value = row.get(spec.name)
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                continue
            if spec.kind is Kind.CATEGORY:
                item[spec.name] = str(value)
            elif spec.kind is Kind.NUMBER:
                item[spec.name] = float(value)
            else:
                item[spec.name] = int(np.round(value))
        out.append(item)
    return out
