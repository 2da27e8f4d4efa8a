"""The service's own database: the audit logs of what it served and recorded, and its keys.

SQLite under ``DESIST_HOME`` by default (write-ahead log, ``synchronous=NORMAL``:
a committed row survives a crash of the service, and readers never block the
writer); PostgreSQL when ``DESIST_DATABASE_URL`` says so. Tables are created
when missing; the service itself only ever inserts audit rows.

The database may be away for a while (a PostgreSQL restart, a network cut, a
file system gone read-only). Requests then fail fast (503) rather than hang,
and the engine drops connections that went bad, so the service recovers by
itself when the database is back: no restart needed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from serving.logs import get_logger
from serving.watchdog import ConnectionWatchdog

log = get_logger("serving.database")

metadata = MetaData()


def _recorded_columns() -> list[Column[Any]]:
    """Return the columns every audit log starts with: the row's id, when, and which client."""
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("time", DateTime(timezone=True), nullable=False, index=True),
        Column("client", String(128), nullable=False),
    ]


def _recorded_table(name: str, *columns: Column[Any] | UniqueConstraint) -> Table:
    """Return the audit log ``name``: the recorded columns, then ``columns``."""
    return Table(name, metadata, *_recorded_columns(), *columns)


def _audit_columns() -> list[Column[Any]]:
    """Return what every served row records: when, who asked, for whom, which model and inputs."""
    return [
        *_recorded_columns(),
        Column("request_id", String(64), nullable=False, index=True),
        Column("subject_ref", String(128), nullable=False),
        Column("model_name", String(128), nullable=False),
        Column("model_version", String(32), nullable=False),
        Column("input_digest", String(80), nullable=False),
    ]


#: One row per score served.
audit_table = Table(
    "audit_scores",
    metadata,
    *_audit_columns(),
    Column("risk_probability", Float, nullable=False),
    Column("risk_band", String(16), nullable=False),
)

#: One row per person in a pathway-recommendation response: the programmes
#: recommended, in rank order, each with its estimated reduction
#: (``programme:reduction``, comma-separated; empty when none is recommended).
recommendation_audit_table = Table(
    "audit_recommendations",
    metadata,
    *_audit_columns(),
    Column("recommended", String(512), nullable=False),
)

#: One row per allocation answered (``POST /v1/pathway-allocations``): the cohort's size, the
#: places asked for and filled per programme and the shares by ethnicity and sex (both as
#: answered, JSON), and the total expected reduction. Its people are in the recommendations
#: log, one row each, in the same transaction (:data:`serving.audit.ALLOCATED`).
allocation_audit_table = _recorded_table(
    "audit_allocations",
    Column("request_id", String(64), nullable=False, index=True),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("cohort_size", Integer, nullable=False),
    Column("places", Text, nullable=False),
    Column("total_expected_reduction", Float, nullable=False),
    Column("shares", Text, nullable=False),
)

#: Requests answered with an error although their audit rows may exist: the commit's outcome
#: was unknown (the connection went silent or broke during COMMIT), or the answer was
#: withheld after its deadline while the commit went on. ``desist audit export`` marks the
#: rows of these request ids ``answered=false``.
unanswered_table = Table(
    "audit_unanswered",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("request_id", String(64), nullable=False, index=True),
    Column("reason", String(64), nullable=False),
)

#: One row per practitioner's decision on a served score or recommendation (named by the
#: served row's ``request_id`` and ``subject_ref``); insert-only: a second decision on the same
#: score is the next ``revision``, never an update. ``decision_request_id`` is the request that
#: recorded it. Columns after ``client`` are :data:`data.decisions.DECISION_COLUMNS`.
decision_audit_table = _recorded_table(
    "decision_audit",
    Column("decision_request_id", String(64), nullable=False),
    Column("request_id", String(64), nullable=False, index=True),
    Column("subject_ref", String(128), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("override_band", String(16), nullable=True),
    Column("override_action", String(32), nullable=True),
    Column("reason", String(1000), nullable=True),
    Column("practitioner_ref", String(128), nullable=False),
    UniqueConstraint("request_id", "subject_ref", "revision", name="uq_decision_revision"),
)

#: One row per person in an outcomes import (``POST /v1/outcomes``, ``desist outcomes import``);
#: ``request_id`` names the import. Insert-only: the newest row per person counts.
outcome_audit_table = _recorded_table(
    "outcome_audit",
    Column("request_id", String(64), nullable=False, index=True),
    Column("subject_ref", String(128), nullable=False, index=True),
    Column("outcome_date", Date, nullable=True),
    Column("follow_up_end", Date, nullable=False),
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


def _no_checkpoint_on_commit(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def is_sqlite(engine: Engine) -> bool:
    """Whether ``engine`` is an SQLite database."""
    return engine.dialect.name == "sqlite"


def checkpoint_wal(engine: Engine) -> None:
    """Copy committed SQLite write-ahead-log pages into the database file (PASSIVE).

    PASSIVE never blocks writers: what cannot be copied now is copied next
    time. Failures (database away, read-only) are left to the next call and
    to the requests, which report them.
    """
    try:
        with engine.connect() as conn:
            # The pragma answers a row; read it, so its statement is finished before the
            # connection goes back to the pool. Left to the garbage collector, a result kept
            # alive (by a stack sampler, seen here) made every commit on that connection fail
            # with "SQL statements in progress": hundreds of 503s in a burst.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all()
    except SQLAlchemyError as err:
        log.debug("WAL checkpoint skipped: %s", type(err).__name__)


#: SQLite errors after which a connection must not be reused. A connection opened while the
#: file was read-only stays read-only for good; one that hit an I/O error may be half broken.
_SQLITE_STALE = ("readonly database", "disk i/o error", "unable to open database")


def _drop_stale_sqlite_connection(context: ExceptionContext) -> None:
    error = context.original_exception
    if isinstance(error, sqlite3.OperationalError) and any(
        text in str(error).lower() for text in _SQLITE_STALE
    ):
        # Treated as a disconnect: the pool discards the connection and opens a fresh one
        # next time, which sees the file as it is then.
        context.is_disconnect = True


def _guard_postgres(engine: Engine, watchdog: ConnectionWatchdog) -> None:
    """Bound every checkout of ``engine`` by ``watchdog``, its liveness ping included.

    SQLAlchemy's own ``pool_pre_ping`` runs before any checkout hook, so a frozen
    connection would hang it unguarded: the ping is done here instead, after arming.
    """

    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        watchdog.arm(record, dbapi_connection)
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as err:
            watchdog.disarm(record)
            # The pool drops this connection and tries a fresh one.
            raise DisconnectionError("stale connection") from err

    def on_return(_dbapi_connection: Any, record: Any, *_args: Any) -> None:
        watchdog.disarm(record)

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_return)
    event.listen(engine, "invalidate", on_return)
    event.listen(engine, "close", on_return)


def make_engine(
    url: str,
    *,
    connect_timeout: float = 5.0,
    statement_timeout: float | None = None,
    pool_timeout: float | None = None,
    create_tables: bool = True,
    background_checkpoints: bool = False,
) -> Engine:
    """Return an engine for ``url``, by default with the service's tables created.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://...``
        (``postgresql://`` also selects psycopg 3 with SQLAlchemy 2.1).
    connect_timeout
        Seconds to wait for a connection (PostgreSQL; libpq counts whole seconds, at
        least 2) or a lock (SQLite).
    statement_timeout
        PostgreSQL only: longest a checked-out connection may be held (ping, statements,
        commit); past it the connection is cut (:mod:`serving.watchdog`), and the server
        ends statements over it too (``statement_timeout``). ``None``: no limit (the CLI).
    pool_timeout
        Seconds to wait for a free pooled connection; default ``connect_timeout``.
    create_tables
        Create missing tables now; the service passes ``False`` and calls
        :func:`prepare_tables`, so that it can start while the database is away.
    background_checkpoints
        SQLite only: commits never run a WAL checkpoint themselves; the caller
        runs :func:`checkpoint_wal` from a background task instead. A
        checkpoint ends in an fsync of the database file, 20-40 ms here, and
        inside a commit it stalled every request queued behind it.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        if background_checkpoints:
            event.listen(engine, "connect", _no_checkpoint_on_commit)
        event.listen(engine, "handle_error", _drop_stale_sqlite_connection)
    else:
        connect_args: dict[str, Any] = {
            # libpq counts whole seconds, at least 2.
            "connect_timeout": max(2, round(connect_timeout)),
            # A peer that vanished without a reset is noticed within seconds, not hours.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 2,
        }
        if statement_timeout is not None:
            ms = max(1, round(statement_timeout * 1000))
            connect_args["options"] = (
                f"-c statement_timeout={ms} -c idle_in_transaction_session_timeout={10 * ms}"
            )
        engine = create_engine(
            url,
            pool_pre_ping=statement_timeout is None,
            hide_parameters=True,
            connect_args=connect_args,
            pool_timeout=connect_timeout if pool_timeout is None else pool_timeout,
        )
        if statement_timeout is not None:
            _guard_postgres(engine, ConnectionWatchdog(statement_timeout))
    if create_tables:
        metadata.create_all(engine)
    return engine


def ensure_tables(engine: Engine) -> None:
    """Create the service's tables where missing (no-op when they exist)."""
    metadata.create_all(engine)


async def prepare_tables(engine: Engine, retry_seconds: float = 2.0) -> asyncio.Task[None] | None:
    """Create the tables now; if the database is away, keep trying in the background.

    Returns
    -------
    asyncio.Task or None
        The retrying task (cancel it at shutdown), or ``None`` if the tables
        are in place. Until they are, scoring answers 503.
    """
    try:
        await run_in_threadpool(ensure_tables, engine)
        return None
    except SQLAlchemyError as err:
        log.error("service database unavailable at start", extra={"error": type(err).__name__})

    async def retry() -> None:
        while True:
            await asyncio.sleep(retry_seconds)
            try:
                await run_in_threadpool(ensure_tables, engine)
            except SQLAlchemyError:
                continue
            log.info("service database available again")
            return

    return asyncio.create_task(retry())
