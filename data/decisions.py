"""A practitioner's decision on a served score: accepted, or overridden with a reason.

The score is professional advice, not the decision (OASys calls the rest
professional judgement; EU AI Act art. 14 asks that a person can oversee and
override). A decision names the score it is about by the audit row's
``request_id`` and ``subject_ref``, and says either ``accepted`` or
``overridden`` to another band and/or action, with a reason (required, free
text, bounded) and the practitioner's reference. Decisions are insert-only:
a second decision on the same score is a new *revision*, and the latest
revision is the one that counts (:func:`latest_decisions`).

:class:`DecisionRequest` is the HTTP contract of ``POST /v1/decisions``
(extra fields refused, like every request); :func:`validate_decisions`
checks an exported decisions table (``desist audit export --kind
decisions``) for the monitor, with every violation named.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from data.errors import SchemaValidationError, Violation
from data.schema import ID_FIELD, PROGRAMMES

#: Risk band names as served (the same as :data:`models.bands.BAND_NAMES`,
#: which the data layer may not import; a test keeps the two equal).
DECISION_BANDS: tuple[str, ...] = ("low", "medium", "high", "very high")
#: Actions a practitioner may override to: a programme, or no programme.
NO_PROGRAMME = "no_programme"
DECISION_ACTIONS: tuple[str, ...] = (*PROGRAMMES, NO_PROGRAMME)
ACCEPTED = "accepted"
OVERRIDDEN = "overridden"
#: Longest reason accepted: a paragraph, not a case file.
MAX_REASON_LENGTH = 1000
#: Columns of a decisions table as exported from the audit log.
DECISION_COLUMNS: tuple[str, ...] = (
    "time",
    "request_id",
    ID_FIELD,
    "revision",
    "decision",
    "override_band",
    "override_action",
    "reason",
    "practitioner_ref",
)

_NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
# A reason is prose: line breaks and tabs are allowed, other control characters not.
_REASON_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+$"
Reference = Annotated[str, Field(strict=True, min_length=1, max_length=128, pattern=_NO_CONTROL)]


class DecisionRequest(BaseModel):
    """A practitioner's decision on one served score or recommendation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: Annotated[
        str, Field(strict=True, min_length=1, max_length=64, pattern=_NO_CONTROL)
    ] = Field(description="The request id of the served score (the X-Request-ID answered).")
    subject_ref: Reference = Field(description="The person the score was for.")
    decision: Literal["accepted", "overridden"] = Field(
        description="accepted: acted on as advised; overridden: another band or action chosen."
    )
    override_band: Literal["low", "medium", "high", "very high"] | None = Field(
        default=None, description="The band the practitioner judged right instead (overrides)."
    )
    override_action: Literal[DECISION_ACTIONS] | None = Field(  # type: ignore[valid-type]
        default=None, description="The programme chosen instead, or no_programme (overrides)."
    )
    reason: (
        Annotated[
            str,
            Field(strict=True, min_length=3, max_length=MAX_REASON_LENGTH, pattern=_REASON_TEXT),
        ]
        | None
    ) = Field(default=None, description="Why; required for an override.")
    practitioner_ref: Reference = Field(
        description="The practitioner's own reference (never a name)."
    )

    @model_validator(mode="after")
    def _override_is_complete(self) -> Self:
        if self.decision == OVERRIDDEN:
            if self.override_band is None and self.override_action is None:
                raise ValueError("an override names override_band, override_action or both")
            if self.reason is None or not self.reason.strip():
                raise ValueError("an override needs a reason")
        elif self.override_band is not None or self.override_action is not None:
            raise ValueError("an accepted decision names no override_band or override_action")
        return self


def override_problem(decision: DecisionRequest, served_band: str) -> str | None:
    """Return why an override cannot stand against the score served, or None.

    An override "to" the band that was served changes nothing and is
    refused; the serving layer looks up ``served_band`` in the audit row.
    """
    unchanged = decision.override_action is None and decision.override_band == served_band
    if decision.decision == OVERRIDDEN and unchanged:
        return f"override_band {served_band!r} is the band that was served"
    return None


def _text_problems(
    frame: pd.DataFrame, column: str, limit: int, required: bool, out: list[Violation]
) -> None:
    text = frame[column].astype("string")
    present = text.notna().to_numpy()
    if required:
        for row in np.flatnonzero(~present)[:100]:
            out.append(Violation(column, int(row) + 1, "missing value (this field is required)"))
    long = present & (text.str.len() > limit).to_numpy(dtype=bool, na_value=False)
    for row in np.flatnonzero(long)[:100]:
        out.append(Violation(column, int(row) + 1, f"longer than {limit} characters"))


def _choice_problems(
    frame: pd.DataFrame, column: str, allowed: tuple[str, ...], out: list[Violation]
) -> None:
    text = frame[column].astype("string")
    bad = (text.notna() & ~text.isin(allowed)).to_numpy(dtype=bool)
    for row in np.flatnonzero(bad)[:100]:
        value = text.iloc[int(row)]
        out.append(
            Violation(column, int(row) + 1, f"unknown value {value!r} (expected one of {allowed})")
        )


def validate_decisions(frame: pd.DataFrame, *, source: str = "decisions") -> pd.DataFrame:
    """Check a decisions table (as exported) and return it with canonical types.

    Raises
    ------
    SchemaValidationError
        Naming every missing column and every bad row (column, row, reason).
    """
    out: list[Violation] = [
        Violation(c, None, "missing required column") for c in DECISION_COLUMNS if c not in frame
    ]
    if out:
        raise SchemaValidationError(out, source=source)
    table = frame.reset_index(drop=True)
    for column, limit in (("request_id", 64), (ID_FIELD, 128), ("practitioner_ref", 128)):
        _text_problems(table, column, limit, True, out)
    _text_problems(table, "reason", MAX_REASON_LENGTH, False, out)
    _choice_problems(table, "decision", (ACCEPTED, OVERRIDDEN), out)
    _choice_problems(table, "override_band", DECISION_BANDS, out)
    _choice_problems(table, "override_action", DECISION_ACTIONS, out)
    revision = pd.to_numeric(table["revision"], errors="coerce")
    for row in np.flatnonzero((revision.isna() | (revision < 1)).to_numpy())[:100]:
        out.append(Violation("revision", int(row) + 1, "not a whole number from 1"))
    overridden = (table["decision"].astype("string") == OVERRIDDEN).to_numpy(dtype=bool)
    unexplained = overridden & table["reason"].isna().to_numpy()
    for row in np.flatnonzero(unexplained)[:100]:
        out.append(Violation("reason", int(row) + 1, "an override needs a reason"))
    time = pd.to_datetime(table["time"], utc=True, errors="coerce", format="ISO8601")
    for row in np.flatnonzero(time.isna().to_numpy())[:100]:
        out.append(Violation("time", int(row) + 1, "not a timestamp"))
    if out:
        raise SchemaValidationError(sorted(out, key=lambda v: v.row or 0), source=source)
    return table.assign(
        time=time,
        revision=revision.astype("int64"),
        **{c: table[c].astype("string") for c in DECISION_COLUMNS if c not in ("time", "revision")},
    )[list(DECISION_COLUMNS)]


def latest_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """Return the latest revision of the decision on each score (request, subject)."""
    ordered = decisions.sort_values(["request_id", ID_FIELD, "revision"], kind="stable")
    return ordered.drop_duplicates(["request_id", ID_FIELD], keep="last").reset_index(drop=True)
