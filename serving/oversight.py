"""Human oversight in the service: practitioners' decisions on served scores, and outcomes.

The domain steps of ``POST /v1/decisions`` and ``POST /v1/outcomes``, and the
import behind ``desist outcomes import``. Like :mod:`serving.scoring` they
know nothing of HTTP and run in the scoring worker's thread, which commits
their rows (with the score rows of other requests waiting) before the answer
is released: a decision or an import answered is recorded, and one that
failed is not, not even in part.

- :func:`decide`: finds the served row (a risk score or a pathway
  recommendation) by request id and subject, refuses an override "to" the
  band served, and returns the decision to record. Its revision is counted
  when it is committed (:meth:`serving.audit.AuditLog.record_all`).
- :func:`outcomes_entry`: validates rows with
  :func:`data.outcomes.validate_outcomes` (every violation named by row,
  column and reason) and returns them to record in one transaction.
- :func:`import_outcomes`: the same for a file, straight into the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from data.decisions import DecisionRequest, override_problem
from data.errors import SchemaValidationError
from data.outcomes import FOLLOW_UP_END, OUTCOME_DATE, load_outcomes, validate_outcomes
from data.schema import ID_FIELD
from serving.audit import AuditEntry, AuditLog, DecisionRecord, OutcomeRecord, served_to
from serving.database import audit_table, recommendation_audit_table
from serving.errors import DatabaseUnavailableError, InvalidRequestError, UnknownScoreError
from serving.keys import Client
from serving.oversight_schemas import OutcomesRequest

#: The client recorded for outcomes imported from the command line.
CLI_CLIENT = "desist-cli"


@dataclass(frozen=True, slots=True)
class Served:
    """The served row a decision is about: which log, and the band served (scores only)."""

    kind: Literal["scores", "recommendations"]
    band: str | None


def find_served(engine: Engine, request_id: str, subject_ref: str) -> Served:
    """Return the score or recommendation served under ``request_id`` for ``subject_ref``.

    Audit rows are insert-only, so a row found now stays: no lock is needed
    between this read and the decision's insert.

    Raises
    ------
    UnknownScoreError
        If neither log holds such a row (answered 404).
    DatabaseUnavailableError
        If the database cannot be read.
    """
    try:
        with engine.connect() as conn:
            band = conn.execute(
                select(audit_table.c.risk_band)
                .where(served_to(audit_table, request_id, subject_ref))
                .limit(1)
            ).scalar()
            if band is not None:
                return Served("scores", str(band))
            recommended = conn.execute(
                select(recommendation_audit_table.c.id)
                .where(served_to(recommendation_audit_table, request_id, subject_ref))
                .limit(1)
            ).scalar()
    except SQLAlchemyError as err:
        raise DatabaseUnavailableError("the service database cannot be read just now") from err
    if recommended is not None:
        return Served("recommendations", None)
    raise UnknownScoreError(
        "no score or recommendation was served under this request_id for this subject_ref"
    )


def decide(
    engine: Engine, decision: DecisionRequest, client: Client, request_id: str
) -> tuple[tuple[DecisionRecord, Served], AuditEntry]:
    """Check a decision against the row served; return it with the audit entry to commit.

    The record's ``revision`` is set when the entry is committed; read it after.

    Raises
    ------
    UnknownScoreError
        If the score decided on was never served (404).
    InvalidRequestError
        If the decision overrides a score to the band that was served (422).
    """
    served = find_served(engine, decision.request_id, decision.subject_ref)
    problem = None if served.band is None else override_problem(decision, served.band)
    if problem is not None:
        raise InvalidRequestError(
            [{"type": "override_unchanged", "loc": ("override_band",), "msg": problem}]
        )
    record = DecisionRecord.from_request(decision)
    entry = AuditEntry("decisions", client.name, request_id, "", "", [record])
    return (record, served), entry


def _problems(error: SchemaValidationError) -> list[dict[str, Any]]:
    """Return a table's violations shaped as pydantic errors under ``outcomes[row]``."""
    problems = []
    for violation in error.violations:
        if violation.row is not None:
            loc: tuple[Any, ...] = ("outcomes", violation.row - 1, violation.column)
        else:
            loc = () if violation.column == "*" else (violation.column,)
        problems.append({"type": "outcome_invalid", "loc": loc, "msg": violation.reason})
    return problems


def outcome_records(table: pd.DataFrame) -> list[OutcomeRecord]:
    """Return the rows of a validated outcomes table (:func:`validate_outcomes`) as records."""
    sanctions = [None if pd.isna(day) else day.date() for day in table[OUTCOME_DATE]]
    ends = [day.date() for day in table[FOLLOW_UP_END]]
    refs = table[ID_FIELD].astype(str).tolist()
    return [
        OutcomeRecord(subject_ref=ref, outcome_date=sanction, follow_up_end=end)
        for ref, sanction, end in zip(refs, sanctions, ends, strict=True)
    ]


def outcomes_entry(
    body: OutcomesRequest, client: Client, request_id: str
) -> tuple[int, AuditEntry]:
    """Validate outcome rows as a file's would be; return their count and the entry to commit.

    Raises
    ------
    InvalidRequestError
        With every violation (row, column, reason); nothing is recorded (422).
    """
    frame = pd.DataFrame([row.model_dump() for row in body.outcomes])
    try:
        table = validate_outcomes(frame, source="outcomes")
    except SchemaValidationError as err:
        raise InvalidRequestError(_problems(err)) from err
    records = outcome_records(table)
    return len(records), AuditEntry("outcomes", client.name, request_id, "", "", records)


def import_outcomes(engine: Engine, path: Path, client: str = CLI_CLIENT) -> tuple[str, int]:
    """Validate an outcomes file and record every row in one transaction.

    Returns
    -------
    tuple[str, int]
        The import's id (its rows' ``request_id``) and the rows recorded.

    Raises
    ------
    DatasetFormatError
        If the file cannot be read.
    SchemaValidationError
        With every violation; nothing is recorded.
    AuditWriteError
        If the rows could not be committed; none of them then exists.
    """
    records = outcome_records(load_outcomes(path))
    import_id = f"import-{uuid.uuid4().hex}"
    AuditLog(engine).record_all([AuditEntry("outcomes", client, import_id, "", "", records)])
    return import_id, len(records)
