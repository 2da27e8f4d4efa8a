"""``desist audit export``: an audit log written out as CSV, oldest row first.

Apart from the writer (:mod:`serving.audit`): exporting only reads, and reads
every log the same way, marking the rows whose request was answered with an
error (``answered=false``).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, Table, select

from serving.database import (
    allocation_audit_table,
    audit_table,
    decision_audit_table,
    outcome_audit_table,
    recommendation_audit_table,
    unanswered_table,
)

#: The audit tables ``desist audit export --kind`` can write.
AUDIT_TABLES: dict[str, Table] = {
    "scores": audit_table,
    "recommendations": recommendation_audit_table,
    "allocations": allocation_audit_table,
    "decisions": decision_audit_table,
    "outcomes": outcome_audit_table,
}


def _spreadsheet_safe(value: object) -> object:
    """Quote text a spreadsheet would run as a formula (caller-supplied subject_ref)."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def export_audit(
    engine: Engine, since: datetime | None, out_path: Path, table: Table = audit_table
) -> int:
    """Write audit rows (from ``since`` on, if given) to a CSV file; return the row count.

    Each row ends with ``answered``: ``true``, or ``false`` when its request was
    answered with an error although the row was committed (an unknown commit
    outcome, or an answer withheld at its deadline: :data:`serving.database.unanswered_table`).

    Parameters
    ----------
    engine
        The service database.
    since
        Earliest time to export; a naive datetime is read as UTC.
    out_path
        CSV file to write (header plus one line per row, oldest first).
    table
        Which audit log: scores (default), recommendations, allocations, decisions or outcomes
        (see :data:`AUDIT_TABLES`).
    """
    query = select(table).order_by(table.c.id)
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        query = query.where(table.c.time >= since)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with engine.connect() as conn, out_path.open("w", newline="") as handle:
        unanswered = set(conn.execute(select(unanswered_table.c.request_id)).scalars())
        writer = csv.writer(handle)
        writer.writerow([*(column.name for column in table.columns), "answered"])
        request_ids = [column.name for column in table.columns].index("request_id")
        for row in conn.execute(query):
            values = list(row)
            when = values[1]
            if isinstance(when, datetime) and when.tzinfo is None:
                # SQLite keeps no zone; every time was written in UTC.
                values[1] = when.replace(tzinfo=UTC)
            values[1] = values[1].isoformat()
            answered = "false" if values[request_ids] in unanswered else "true"
            writer.writerow([*(_spreadsheet_safe(v) for v in values), answered])
            count += 1
    return count
