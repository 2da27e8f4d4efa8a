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

from benchmarks.support.registry import Store, train_small_champions
from data.schema import ASSESSMENT_FIELDS, Kind
from data.synthetic import SynthConfig, generate_cohort
from serving.settings import Settings
from tests.support.serving import Service, make_settings, start_service
from tests.support.shared import built_once


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """One scorecard trained on the small config and promoted (a few seconds, once per run)."""
    return built_once(
        tmp_path_factory, "serving-home", lambda home: train_small_champions(home, pathways=False)
    )


@pytest.fixture(scope="session")
def pathway_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A registry with risk and desist-pathways champions (small, seeded, once per run)."""
    return built_once(
        tmp_path_factory,
        "serving-pathways-home",
        lambda home: train_small_champions(home, pathways=True),
    )


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
