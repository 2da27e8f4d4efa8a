"""The service's own database: the audit logs (scores, recommendations) and the API keys.

SQLite under ``DESIST_HOME`` by default (write-ahead log, ``synchronous=NORMAL``:
a committed row survives a crash of the service, and readers never block the
writer); PostgreSQL when ``DESIST_DATABASE_URL`` says so. Tables are created
when missing; the service itself only ever inserts audit rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url

metadata = MetaData()

audit_table = Table(
    "audit_scores",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("client", String(128), nullable=False),
    Column("request_id", String(64), nullable=False, index=True),
    Column("subject_ref", String(128), nullable=False),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("input_digest", String(80), nullable=False),
    Column("risk_probability", Float, nullable=False),
    Column("risk_band", String(16), nullable=False),
)

#: One row per person in a pathway-recommendation response: the programmes
#: recommended, in rank order, each with its estimated reduction
#: (``programme:reduction``, comma-separated; empty when none is recommended).
recommendation_audit_table = Table(
    "audit_recommendations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("client", String(128), nullable=False),
    Column("request_id", String(64), nullable=False, index=True),
    Column("subject_ref", String(128), nullable=False),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("input_digest", String(80), nullable=False),
    Column("recommended", String(512), nullable=False),
)

api_keys_table = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("client", String(128), nullable=False, index=True),
    Column("scope", String(16), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("key_hash", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Return an engine for ``url`` with the service's tables created.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://...``
        (``postgresql://`` also selects psycopg 3 with SQLAlchemy 2.1).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
    metadata.create_all(engine)
    return engine
