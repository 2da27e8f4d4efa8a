"""Helpers the serving tests share: settings, a started app with keys, audit-log counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Table, func, select

from benchmarks.support.registry import Store
from serving.app import create_app
from serving.commands import create_key
from serving.database import audit_table, make_engine, recommendation_audit_table
from serving.keys import KeyStore
from serving.settings import Settings


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


def served_pathway_table(service: Service, items: list[dict[str, Any]]) -> tuple[Any, Any]:
    """Return the served pathway model and ``items`` as its input table (validated as sent)."""
    from serving.schemas import assessment_batch_model

    holder = service.client.app.state.pathway_holder  # type: ignore[attr-defined]
    recommender = holder.current.recommender
    batch = assessment_batch_model(max(len(items), 1)).model_validate({"assessments": items})
    return recommender.model, recommender.frame(batch.assessments)


def key_store_with_key(tmp_path: Path, cache_seconds: float) -> tuple[KeyStore, str, str]:
    """Return a key store under ``tmp_path`` with one score key of client ``c``: its id, the key."""
    keys = KeyStore(make_engine(f"sqlite:///{tmp_path / 'k.db'}"), cache_seconds=cache_seconds)
    key_id, key = keys.create_key("c", "score")
    return keys, key_id, key


def audit_rows(settings: Settings, table: Table = audit_table) -> int:
    engine = make_engine(settings.resolved_database_url())
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return int(count)


def recommendation_rows(settings: Settings) -> int:
    return audit_rows(settings, recommendation_audit_table)


def audited_subject_refs(database_url: str) -> list[str]:
    """Return the ``subject_ref`` of every row of the score audit log at ``database_url``."""
    engine = make_engine(database_url)
    with engine.connect() as conn:
        refs = conn.execute(select(audit_table.c.subject_ref)).scalars().all()
    engine.dispose()
    return list(refs)
