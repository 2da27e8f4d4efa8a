"""Fixtures of the serving tests: registries with trained, promoted models, and apps around them.

Helpers the tests call are in :mod:`tests.support.serving` and :mod:`benchmarks.support`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks.support.configs import small_config
from benchmarks.support.registry import MODEL, Store
from data.schema import ASSESSMENT_FIELDS, NEVER_FEATURES, Kind
from data.synthetic import SynthConfig, generate_cohort
from models.risk import ScorecardSettings
from pipeline.registry import promote
from pipeline.tracking import Tracker
from pipeline.train_pathways import train as train_pathways
from pipeline.train_risk import train
from serving.settings import Settings
from tests.support.serving import Service, make_settings, start_service
from tests.support.training import LOOSE_GATES, LOOSE_PATHWAY_GATES, tiny_pathway_config


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
    pathways = train_pathways(tiny_pathway_config(), tracker=tracker)
    decision = promote(
        tracker,
        "desist-pathways",
        pathways.version,
        LOOSE_PATHWAY_GATES,
        NEVER_FEATURES,
        actor="tests",
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


@pytest.fixture
def settings(trained_store: Store, tmp_path: Path) -> Settings:
    return make_settings(trained_store, tmp_path)


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    yield from start_service(settings)


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
