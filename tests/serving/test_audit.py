from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from benchmarks.support.assessments import assessment
from benchmarks.support.registry import Store
from data.schema import make_assessment_model
from serving.audit import (
    AuditEntry,
    AuditLog,
    AuditRecord,
    input_digest,
    input_digests,
)
from serving.commands import export_audit as export_command
from serving.database import audit_table, make_engine
from serving.errors import AuditWriteError
from tests.support.serving import make_settings, start_service


def record(subject: str) -> AuditRecord:
    return AuditRecord(subject, "sha256:" + "ab" * 32, 0.25, "low")


def test_a_request_is_recorded_in_one_transaction(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    log = AuditLog(engine)
    log.record(AuditEntry("scores", "c", "r1", "desist-risk", "4", [record("a"), record("b")]))
    # A row that breaks a constraint fails the whole request: nothing of it is kept.
    bad = AuditRecord(None, "sha256:x", 0.5, "low")  # type: ignore[arg-type]
    with pytest.raises(AuditWriteError):
        log.record(AuditEntry("scores", "c", "r2", "desist-risk", "4", [record("c"), bad]))
    with engine.connect() as conn:
        rows = conn.execute(select(audit_table)).all()
    assert [r.request_id for r in rows] == ["r1", "r1"]
    assert rows[0].time is not None and rows[0].model_version == "4"


def test_input_digest_is_canonical() -> None:
    model = make_assessment_model()
    omitted = model.model_validate(assessment())
    explicit = model.model_validate({**assessment(), "debt": None})
    changed = model.model_validate(assessment(age=28))
    assert input_digest(omitted) == input_digest(explicit)
    assert input_digest(omitted) != input_digest(changed)
    assert input_digest(omitted).startswith("sha256:") and len(input_digest(omitted)) == 71


def test_input_digests_are_each_assessments_input_digest() -> None:
    model = make_assessment_model()
    items = [
        model.model_validate(assessment()),
        model.model_validate({**assessment(), "debt": None}),
        model.model_validate(assessment(subject_ref="é ü 中", age=28, total_sanctions=9)),
    ]
    assert input_digests(items) == [input_digest(item) for item in items]
    assert input_digests([]) == []


def test_every_column_of_a_row_is_recorded_in_its_place(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    when = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    records = [AuditRecord("a", "sha256:" + "1" * 64, 0.125, "low"), record("b")]
    AuditLog(engine).record(AuditEntry("scores", "cli", "req", "desist-risk", "9", records, when))
    with engine.connect() as conn:
        rows = conn.execute(select(audit_table).order_by(audit_table.c.id)).all()
    assert [tuple(row)[1:] for row in rows] == [
        (when.replace(tzinfo=None), "cli", "req", r[0], "desist-risk", "9", *r[1:])
        for r in map(tuple, records)
    ]


@pytest.mark.postgres
def test_audit_against_postgresql(
    trained_store: Store, tmp_path: Path, postgres_database: str
) -> None:
    settings = make_settings(trained_store, tmp_path, database_url=postgres_database)
    for service in start_service(settings):
        for size in (1, 4):
            batch = [assessment(subject_ref=f"p{i}") for i in range(size)]
            assert service.score(batch).status_code == 200
        assert service.score([assessment(age=1)]).status_code == 422
    engine = make_engine(postgres_database)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_table)).scalar_one() == 5
        when = conn.execute(select(audit_table.c.time)).scalars().first()
    engine.dispose()
    assert when is not None and when.tzinfo is not None
    out = tmp_path / "pg.csv"
    assert export_command(None, out, settings=settings) == 5


def test_service_commits_leave_wal_checkpoints_to_the_background(tmp_path: Path) -> None:
    from serving.database import checkpoint_wal

    path = tmp_path / "a.db"
    engine = make_engine(f"sqlite:///{path}", background_checkpoints=True)
    log = AuditLog(engine)
    record = AuditRecord("s" * 100, "sha256:x", 0.5, "medium")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
    empty = path.stat().st_size
    for i in range(600):
        log.record(AuditEntry("scores", "c", str(i), "m", "1", [record]))
    # ~1,900 log frames, past SQLite's default of a checkpoint every 1,000: none ran, the
    # database file has not grown.
    assert path.stat().st_size == empty
    assert Path(f"{path}-wal").stat().st_size > 600 * 100
    checkpoint_wal(engine)
    assert path.stat().st_size > empty + 600 * 100
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_table)).scalar_one() == 600
    engine.dispose()


def test_a_checkpoint_leaves_no_statement_open_on_its_pooled_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import Connection

    from serving.database import checkpoint_wal

    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}", background_checkpoints=True)
    log = AuditLog(engine)
    log.record(AuditEntry("scores", "c", "r0", "m", "1", [record("a")]))
    # Something may keep the checkpoint's result alive after the call (a profiler or a
    # traceback holding its frame; seen under a stack sampler): its statement must be done
    # by then, or every commit on that pooled connection fails ("SQL statements in progress").
    kept: list[object] = []
    execute = Connection.exec_driver_sql

    def keeping(self: Connection, *args: object, **kwargs: object) -> object:
        result = execute(self, *args, **kwargs)  # type: ignore[arg-type]
        kept.append(result)
        return result

    monkeypatch.setattr(Connection, "exec_driver_sql", keeping)
    checkpoint_wal(engine)
    monkeypatch.undo()
    assert kept
    log.record(AuditEntry("scores", "c", "r1", "m", "1", [record("b")]))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_table)).scalar_one() == 2
    engine.dispose()
