"""What ``desist monitor`` reads from the service database for one model version and period.

The score rows a version served in the period, the practitioners' decisions
on those scores and the outcomes of those people, each shaped as
:func:`pipeline.monitoring.monitor` takes it: ``scores`` with ``time``,
``request_id``, ``subject_ref``, ``model_version``, ``risk_probability`` and
``risk_band``; ``decisions`` through :func:`data.decisions.validate_decisions`;
``outcomes`` through :func:`data.outcomes.validate_outcomes` (the newest row
per person). The serving layer never imports ``pipeline``: the CLI passes
these on.

The audit log keeps a digest of each assessment, not the assessment, so
drift and group checks need the assessments as sent (a batch-scoring input
file): pass them as ``assessments`` and they are joined on ``subject_ref``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Table, select
from sqlalchemy.exc import SQLAlchemyError

from data.decisions import DECISION_COLUMNS, validate_decisions
from data.errors import SchemaValidationError, Violation
from data.outcomes import OUTCOME_COLUMNS, validate_outcomes
from data.schema import ID_FIELD
from serving.database import audit_table, decision_audit_table, outcome_audit_table
from serving.errors import DatabaseUnavailableError, NoScoresServedError

#: The score columns handed to the monitor, as the audit log names them.
SCORE_COLUMNS: tuple[str, ...] = (
    "time",
    "request_id",
    ID_FIELD,
    "model_name",
    "model_version",
    "risk_probability",
    "risk_band",
)


@dataclass(frozen=True)
class MonitoringInputs:
    """The monitor's inputs for one version and period (``None``: nothing recorded yet)."""

    scores: pd.DataFrame
    outcomes: pd.DataFrame | None
    decisions: pd.DataFrame | None


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _times(values: pd.Series) -> pd.Series:
    """Return audit times as UTC timestamps (SQLite keeps no zone; every time was UTC)."""
    stamps = pd.to_datetime(values)
    return stamps.dt.tz_localize(UTC) if stamps.dt.tz is None else stamps.dt.tz_convert(UTC)


def _frame(engine: Engine, query: Any, columns: list[str]) -> pd.DataFrame:
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except SQLAlchemyError as err:
        raise DatabaseUnavailableError("the service database cannot be read just now") from err
    return pd.DataFrame([tuple(row) for row in rows], columns=columns)


def _period(table: Table, query: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(table.c.time >= _utc(since))
    if until is not None:
        query = query.where(table.c.time < _utc(until))
    return query


def _join_assessments(scores: pd.DataFrame, assessments: pd.DataFrame) -> pd.DataFrame:
    """Attach each person's assessment (features, audited attributes) to their scores."""
    if ID_FIELD not in assessments.columns:
        raise SchemaValidationError(
            [Violation(ID_FIELD, None, "missing required column")], source="assessments"
        )
    repeated = assessments[ID_FIELD].duplicated().to_numpy()
    if repeated.any():
        rows = [int(i) + 1 for i in repeated.nonzero()[0][:20]]
        raise SchemaValidationError(
            [Violation(ID_FIELD, r, "duplicate id: one assessment per person") for r in rows],
            source="assessments",
        )
    extra = [c for c in assessments.columns if c == ID_FIELD or c not in scores.columns]
    return scores.merge(assessments[extra], on=ID_FIELD, how="left", validate="many_to_one")


def load_monitoring_inputs(
    engine: Engine,
    *,
    version: str,
    model_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    assessments: pd.DataFrame | None = None,
) -> MonitoringInputs:
    """Read the scores ``version`` served from ``since`` to before ``until``, with what followed.

    Parameters
    ----------
    engine
        The service database.
    version, model_name
        The model version monitored (and its registered name, when several
        models share the database).
    since, until
        The period (naive datetimes are UTC); open at either end when None.
    assessments
        Optional: the assessments as sent, one row per ``subject_ref``,
        joined to the scores for drift and group checks.

    Returns
    -------
    MonitoringInputs
        Scores in serving order; decisions on those scores (every revision:
        the monitor keeps the latest); outcomes of the people scored (the
        newest imported row per person), or None where none is recorded.

    Raises
    ------
    NoScoresServedError
        If the version served no score in the period.
    DatabaseUnavailableError
        If the database cannot be read.
    SchemaValidationError
        If recorded decisions or outcomes, or ``assessments``, break their schema.
    """
    table = audit_table
    query = select(*(table.c[c] for c in SCORE_COLUMNS)).where(table.c.model_version == version)
    if model_name is not None:
        query = query.where(table.c.model_name == model_name)
    query = _period(table, query, since, until).order_by(table.c.id)
    scores = _frame(engine, query, [*SCORE_COLUMNS])
    if scores.empty:
        raise NoScoresServedError(f"model version {version} served no score in the period")
    scores["time"] = _times(scores["time"])
    if assessments is not None:
        scores = _join_assessments(scores, assessments)
    return MonitoringInputs(
        scores=scores,
        outcomes=_outcomes(engine, scores),
        decisions=_decisions(engine, scores, since),
    )


def _decisions(engine: Engine, scores: pd.DataFrame, since: datetime | None) -> pd.DataFrame | None:
    """Return every decision recorded on the scores in ``scores`` (a decision follows its score)."""
    table = decision_audit_table
    query = select(*(table.c[c] for c in DECISION_COLUMNS)).order_by(table.c.id)
    if since is not None:
        query = query.where(table.c.time >= _utc(since))
    found = _frame(engine, query, [*DECISION_COLUMNS])
    served = pd.MultiIndex.from_frame(scores[["request_id", ID_FIELD]].astype(object))
    keys = pd.MultiIndex.from_frame(found[["request_id", ID_FIELD]].astype(object))
    found = found[keys.isin(served)]
    if found.empty:
        return None
    found = found.assign(time=_times(found["time"]).map(lambda t: t.isoformat()))
    return validate_decisions(found, source="decision_audit")


def _outcomes(engine: Engine, scores: pd.DataFrame) -> pd.DataFrame | None:
    """Return the newest outcome row of each person scored (later imports correct earlier ones)."""
    table = outcome_audit_table
    query = select(*(table.c[c] for c in OUTCOME_COLUMNS)).order_by(table.c.id)
    found = _frame(engine, query, [*OUTCOME_COLUMNS])
    found = found[found[ID_FIELD].isin(set(scores[ID_FIELD]))]
    found = found.drop_duplicates(ID_FIELD, keep="last").reset_index(drop=True)
    if found.empty:
        return None
    return validate_outcomes(found, source="outcome_audit")
