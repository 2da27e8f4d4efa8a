"""The audit logs: one row per score or recommendation served, written before the response.

Each row records when, for which client and request, which subject, which
model version, a digest of the inputs, and the probability and band (or the
programmes recommended, with their estimates and the one offered; or, for
each person of an allocated cohort, the place given or none, :data:`ALLOCATED`,
beside one row for the allocation itself: its places, fills and shares,
:class:`AllocationRecord`). The rows of a request go in
one transaction; if it fails, the request fails and nothing leaves the
service unrecorded. Requests waiting together may share a transaction
(:meth:`AuditLog.record_all`, used by :mod:`serving.worker`): then it holds
every row of each of them, and if it fails, every one of them fails. The
service only inserts: rows are never updated or deleted.

Practitioners' decisions and imported outcomes (:class:`DecisionRecord`,
:class:`OutcomeRecord`) go the same way, in the same transactions: a
decision's revision is counted inside the transaction that inserts it, after
locking the served row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has
one writer at a time), so decisions on one score are counted in turn. Should
two still claim the same revision, the unique constraint refuses one and the
whole transaction, insert-only and so safe to repeat, is run again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from operator import attrgetter, itemgetter
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel
from pydantic_core import to_json
from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from data.decisions import DecisionRequest
from serving.database import (
    allocation_audit_table,
    audit_table,
    decision_audit_table,
    is_sqlite,
    outcome_audit_table,
    recommendation_audit_table,
    unanswered_table,
)
from serving.errors import AuditOutcomeUnknownError, AuditWriteError

#: Kinds of entry whose rows are inserted one statement per row (few rows, a revision to count).
OVERSIGHT_KINDS = ("decisions", "outcomes")
#: The log of each served kind: allocations go beside recommendations (``recommended`` starting
#: :data:`ALLOCATED`), so a decision on one is recorded as on a recommendation.
SERVED_LOG = {
    "scores": "scores",
    "recommendations": "recommendations",
    "allocations": "recommendations",
}
#: How the row of a person in an allocated cohort starts its ``recommended`` text:
#: ``allocated=programme:reduction`` for a place, :data:`NOT_PLACED` for none.
ALLOCATED = "allocated="
#: The ``recommended`` text of a person in an allocated cohort given no place.
NOT_PLACED = ALLOCATED + "none"
#: Transactions tried when two decisions race for the same revision of one score.
REVISION_ATTEMPTS = 20


def served_to(table: Table, request_id: str, subject_ref: str) -> ColumnElement[bool]:
    """Return the condition on ``table``'s rows: served under ``request_id`` for ``subject_ref``."""
    return and_(table.c.request_id == request_id, table.c.subject_ref == subject_ref)


def input_digest(assessment: BaseModel) -> str:
    """Return ``sha256:<hex>`` of an assessment's canonical JSON.

    Canonical: the validated assessment serialised by pydantic, fields in
    schema order, absent ("not assessed") fields as ``null``, no whitespace.
    The same inputs always give the same digest, whether a field was omitted
    or sent as null.
    """
    return "sha256:" + hashlib.sha256(assessment.model_dump_json().encode()).hexdigest()


def input_digests(assessments: Sequence[BaseModel]) -> list[str]:
    """Return :func:`input_digest` of each assessment, in order.

    The same bytes, from the model's serializer directly: ``model_dump_json``
    decodes them to text that the digest encodes back, which was half the cost
    of the digests of a 1,000-assessment batch.
    """
    sha256 = hashlib.sha256
    return [
        "sha256:" + sha256(type(item).__pydantic_serializer__.to_json(item)).hexdigest()
        for item in assessments
    ]


def row_digests(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Return :func:`input_digest` of each assessment, from its validated values.

    ``rows`` are the assessments' values in schema order (a validated model's
    ``__dict__``, or :class:`serving.columnar.CheckedBatch` rows). The same
    bytes as the model's serializer writes (tested), each row encoded by
    pydantic-core's encoder: for 1,000 rows this costs less than encoding them
    in one call and cutting the result where each starts (2.0 ms, not 2.5).
    """
    sha256 = hashlib.sha256
    return ["sha256:" + sha256(to_json(row)).hexdigest() for row in rows]


class AuditRecord(NamedTuple):
    """One score as recorded.

    A named tuple, not a frozen dataclass: a 1,000-assessment request makes
    1,000 of them, and a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) cost 0.7 ms of it here.
    """

    subject_ref: str
    input_digest: str
    risk_probability: float
    risk_band: str


class RecommendationRecord(NamedTuple):
    """One person's pathway recommendation as recorded (a named tuple, as :class:`AuditRecord`).

    ``recommended`` is the ranked programmes with their estimated reductions,
    ``programme:reduction`` comma-separated (empty when none is recommended),
    then ``;offered=programme`` (the served policy's one offer, or ``none``).
    A person allocated a place (kind ``allocations``) has one row whose
    ``recommended`` reads ``allocated=programme:reduction``.
    """

    subject_ref: str
    input_digest: str
    recommended: str


@dataclass(slots=True)
class DecisionRecord:
    """One practitioner's decision as recorded (see :class:`data.decisions.DecisionRequest`).

    ``request_id`` and ``subject_ref`` name the served score; ``revision`` is
    assigned when the row is committed (1 + the decisions already on that score).
    """

    request_id: str
    subject_ref: str
    decision: str
    override_band: str | None
    override_action: str | None
    reason: str | None
    practitioner_ref: str
    revision: int = 0

    @classmethod
    def from_request(cls, decision: DecisionRequest) -> DecisionRecord:
        """Return a checked decision as recorded: field for field; its revision comes at commit."""
        requested = {f.name for f in fields(cls)} - {"revision"}
        return cls(**decision.model_dump(include=requested))


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """One person's outcome as imported (see :mod:`data.outcomes`)."""

    subject_ref: str
    outcome_date: date | None
    follow_up_end: date


class AllocationRecord(NamedTuple):
    """An allocation as recorded, beside its people's rows: what it was asked and answered.

    ``places`` and ``shares`` are the answer's own (JSON): per programme the
    places asked for and filled, and the shares by ethnicity and sex.
    """

    cohort_size: int
    places: str
    total_expected_reduction: float
    shares: str


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """The audit rows of one request, ready to insert.

    ``kind`` names the log (``scores``: :class:`AuditRecord` records,
    ``recommendations`` and ``allocations``: :class:`RecommendationRecord` ones
    (both go to the recommendations log, :data:`SERVED_LOG`), ``decisions``:
    :class:`DecisionRecord`, ``outcomes``: :class:`OutcomeRecord`); ``time`` is
    when the request's answer was made. Decisions and outcomes name no model
    (``model_name`` and ``model_version`` empty). An allocation's entry also
    carries its :class:`AllocationRecord`.
    """

    kind: Literal["scores", "recommendations", "allocations", "decisions", "outcomes"]
    client: str
    request_id: str
    model_name: str
    model_version: str
    records: Sequence[Any]
    time: datetime = field(default_factory=_now)
    allocation: AllocationRecord | None = None


class _Insert:
    """One multi-row INSERT into ``table``, compiled once for the engine's driver.

    Executed with driver-level parameters: per-row processing by SQLAlchemy
    cost 13 ms per 1,000 rows here.
    """

    def __init__(self, engine: Engine, table: Table) -> None:
        columns = [c.name for c in table.columns if c.name != "id"]
        compiled = table.insert().compile(dialect=engine.dialect, column_keys=columns)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.order: list[str] = list(compiled.positiontup or columns)
        # Only the shared values (the time, for SQLite a string) need converting; the
        # per-row ones are already the driver's str and float.
        self.processors = {
            c.name: c.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
            for c in table.columns
        }

    def rows(self, shared: dict[str, object], records: Sequence[Any]) -> list[Any]:
        """Return the driver parameters of ``records`` (named tuples) plus the ``shared`` values."""
        converted = {}
        for name, value in shared.items():
            process = self.processors.get(name)
            converted[name] = process(value) if process is not None else value
        own = [name for name in self.order if name not in converted]
        if self.positional and len(own) > 1:
            # Shared values, then the record's own read by one attrgetter call, put in the
            # statement's column order by one itemgetter call: C loops, not a generator
            # per row (which cost a millisecond per 1,000 rows).
            head = tuple(converted.values())
            place = list(converted) + own
            arrange = itemgetter(*(place.index(name) for name in self.order))
            get = attrgetter(*own)
            return [arrange(head + get(r)) for r in records]
        if self.positional:
            return [
                tuple(
                    converted[name] if name in converted else getattr(r, name)
                    for name in self.order
                )
                for r in records
            ]
        return [{**converted, **{name: getattr(r, name) for name in own}} for r in records]


class AuditLog:
    """Insert-only writer of audit rows: scores and pathway recommendations.

    Parameters
    ----------
    engine
        The service database (see :func:`serving.database.make_engine`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._inserts = {
            "scores": _Insert(engine, audit_table),
            "recommendations": _Insert(engine, recommendation_audit_table),
        }

    def record(self, entry: AuditEntry) -> None:
        """Insert the rows of one request (scores, recommendations, ...) in a single transaction.

        Raises
        ------
        AuditWriteError
            If the rows could not be committed; none of them then exists.
        """
        self.record_all([entry])

    def record_all(
        self,
        entries: Sequence[AuditEntry],
        *,
        unanswered: Sequence[tuple[str, str]] = (),
        before_commit: Callable[[], bool] | None = None,
    ) -> None:
        """Insert the rows of several requests in one transaction: all of them, or none.

        One commit for ten requests cost a third of ten single commits here;
        that is how a backlog drains fast (see :mod:`serving.worker`).

        Parameters
        ----------
        entries
            The rows of each request.
        unanswered
            ``(request_id, reason)`` of earlier requests answered with an error although
            their rows may exist; recorded in the same transaction.
        before_commit
            Called after the inserts, just before COMMIT; ``False`` rolls back instead
            (a request of the group was answered meanwhile).

        Raises
        ------
        AuditOutcomeUnknownError
            If the connection broke during COMMIT: the rows may or may not exist.
        AuditWriteError
            If the rows could not be committed; none of them then exists.
        """
        rows: dict[str, list[Any]] = {"scores": [], "recommendations": []}
        oversight = [entry for entry in entries if entry.kind in OVERSIGHT_KINDS]
        for entry in entries:
            if entry.kind in OVERSIGHT_KINDS:
                continue
            shared: dict[str, object] = {
                "time": entry.time,
                "client": entry.client,
                "request_id": entry.request_id,
                "model_name": entry.model_name,
                "model_version": entry.model_version,
            }
            log = SERVED_LOG[entry.kind]
            rows[log] += self._inserts[log].rows(shared, entry.records)
        for attempt in range(1, REVISION_ATTEMPTS + 1):
            try:
                with self.engine.connect() as conn:
                    transaction = conn.begin()
                    for kind, values in rows.items():
                        if values:
                            conn.exec_driver_sql(self._inserts[kind].sql, values)
                    for entry in oversight:
                        _insert_oversight(conn, entry)
                    for entry in entries:
                        if entry.allocation is not None:
                            _insert_allocation(conn, entry, entry.allocation)
                    if unanswered:
                        conn.execute(
                            unanswered_table.insert(),
                            [
                                {"time": _now(), "request_id": r, "reason": why}
                                for r, why in unanswered
                            ],
                        )
                    if before_commit is not None and not before_commit():
                        transaction.rollback()
                        raise AuditWriteError("the audit log could not record the scores in time")
                    try:
                        transaction.commit()
                    except SQLAlchemyError as err:
                        if getattr(err, "connection_invalidated", False) and not is_sqlite(
                            self.engine
                        ):
                            # COMMIT was sent and the link broke: the server may have committed.
                            raise AuditOutcomeUnknownError(
                                "the audit commit's outcome is unknown; the scores are withheld"
                            ) from err
                        raise
                return
            except IntegrityError as err:
                # Only a revision race breaks a constraint; the transaction is rolled back whole.
                if not oversight or attempt == REVISION_ATTEMPTS:
                    raise AuditWriteError("the audit log could not record the scores") from err
            except SQLAlchemyError as err:
                raise AuditWriteError("the audit log could not record the scores") from err


def _insert_allocation(conn: Connection, entry: AuditEntry, record: AllocationRecord) -> None:
    """Insert an allocation's own row, in ``conn``'s transaction (its people's rows beside it)."""
    conn.execute(
        insert(allocation_audit_table),
        {
            "time": entry.time,
            "client": entry.client,
            "request_id": entry.request_id,
            "model_name": entry.model_name,
            "model_version": entry.model_version,
            **record._asdict(),
        },
    )


def _insert_oversight(conn: Connection, entry: AuditEntry) -> None:
    """Insert a decision entry (counting each revision) or an outcomes entry, in ``conn``'s txn."""
    if entry.kind == "outcomes":
        shared = {"time": entry.time, "client": entry.client, "request_id": entry.request_id}
        conn.execute(
            insert(outcome_audit_table),
            [
                {
                    **shared,
                    "subject_ref": r.subject_ref,
                    "outcome_date": r.outcome_date,
                    "follow_up_end": r.follow_up_end,
                }
                for r in entry.records
            ],
        )
        return
    table = decision_audit_table
    for record in entry.records:
        # The served row is locked first (PostgreSQL; SQLite has one writer at a time anyway),
        # so decisions on one score are counted one after another, each seeing the last.
        for served in (audit_table, recommendation_audit_table):
            conn.execute(
                select(served.c.id)
                .where(served_to(served, record.request_id, record.subject_ref))
                .with_for_update()
            ).all()
        # Counted in this transaction, so a second decision of the same group sees the first;
        # a concurrent one committing the same revision first fails the unique constraint.
        latest = conn.execute(
            select(func.coalesce(func.max(table.c.revision), 0)).where(
                served_to(table, record.request_id, record.subject_ref)
            )
        ).scalar_one()
        record.revision = int(latest) + 1
        conn.execute(
            insert(table),
            {
                "time": entry.time,
                "client": entry.client,
                "decision_request_id": entry.request_id,
                "request_id": record.request_id,
                "subject_ref": record.subject_ref,
                "revision": record.revision,
                "decision": record.decision,
                "override_band": record.override_band,
                "override_action": record.override_action,
                "reason": record.reason,
                "practitioner_ref": record.practitioner_ref,
            },
        )
