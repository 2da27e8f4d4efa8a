"""The CSV export of an audit log: rows since a date, with times in UTC, spreadsheet-safe."""

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from serving.audit import AuditEntry, AuditLog, AuditRecord
from serving.audit_export import export_audit
from serving.database import make_engine


def record(subject: str) -> AuditRecord:
    return AuditRecord(subject, "sha256:" + "ab" * 32, 0.25, "low")


def test_export_writes_csv_since_a_date(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    AuditLog(engine).record(AuditEntry("scores", "c", "r", "m", "1", [record("a")]))
    out = tmp_path / "out" / "audit.csv"
    assert export_audit(engine, None, out) == 1
    (row,) = list(csv.DictReader(out.open()))
    assert row["subject_ref"] == "a" and row["risk_band"] == "low"
    assert datetime.fromisoformat(row["time"]).tzinfo is not None
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert export_audit(engine, tomorrow, out) == 0
    assert export_audit(engine, datetime(2000, 1, 1), out) == 1  # naive: read as UTC


def test_export_quotes_text_a_spreadsheet_would_run(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    formula = AuditRecord('=HYPERLINK("http://x")', "sha256:0", 0.4, "medium")
    AuditLog(engine).record(AuditEntry("scores", "c", "r", "m", "1", [formula]))
    out = tmp_path / "audit.csv"
    assert export_audit(engine, None, out) == 1
    assert "'=HYPERLINK" in out.read_text()
