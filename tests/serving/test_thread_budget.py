"""The service's thread budget: chosen once when it starts, and the models load within it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.support.registry import Store
from models import threads
from serving import registry_loader
from serving.registry_loader import LoadedModel
from serving.settings import Settings
from tests.support.serving import make_settings, start_service


def test_the_cores_are_watched_once_and_every_load_uses_that_budget(
    trained_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DESIST_THREADS", raising=False)
    watched: list[frozenset[int]] = []

    def one_core_busy(cpus: frozenset[int]) -> float:
        watched.append(cpus)
        return len(cpus) - 1.0  # leaves one core: a budget of 1 on any machine

    budgets: list[int | None] = []
    load_model = registry_loader.load_model

    def recording_load(settings: Settings) -> LoadedModel:
        budgets.append(settings.threads)
        return load_model(settings)

    monkeypatch.setattr(threads, "busy_cores", one_core_busy)
    monkeypatch.setattr("serving.lifespan.load_model", recording_load)
    with contextmanager(start_service)(make_settings(trained_store, tmp_path)) as service:
        assert service.client.get("/readyz").status_code == 200
        reloaded = service.client.post("/admin/reload", headers=service.headers(service.admin_key))
        assert reloaded.status_code == 200
    assert len(watched) == 1  # at start only: never again per load or reload
    assert budgets and set(budgets) == {1}
