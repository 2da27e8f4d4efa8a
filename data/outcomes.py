"""Outcomes of scored people, and which of them may be counted yet.

An outcomes file (CSV or Parquet) has one row per person:

``subject_ref``
    The case system's reference, as sent to be scored.
``outcome_date``
    Date (``YYYY-MM-DD``) of the person's first new sanction since follow-up
    began; empty when there was none.
``follow_up_end``
    Last date the person's record was checked (required): no sanction
    before it other than ``outcome_date``.

:func:`validate_outcomes` checks the whole table and refuses it with every
violation (row, column, reason) before anything is used, as
:func:`data.validation.validate_frame` does for assessments: an import is
never partial.

:func:`link_outcomes` joins scores to outcomes under the matured-window rule:
a score's window runs from the day it was served for ``window_months`` (12
for the risk model's outcome, ``reoffended_12m``); it counts only once the
window has closed and either the sanction fell inside it (outcome 1) or
follow-up covered all of it (outcome 0). Counting early re-offences before
the window closes, while the people who will stay clean cannot yet be
counted, would overstate the observed rate.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd

from data.errors import SchemaValidationError, Violation
from data.loaders import read_table
from data.schema import ID_FIELD
from data.validation import MAX_ROWS_PER_CHECK

OUTCOME_DATE = "outcome_date"
FOLLOW_UP_END = "follow_up_end"
OUTCOME_COLUMNS: tuple[str, ...] = (ID_FIELD, OUTCOME_DATE, FOLLOW_UP_END)
#: The score column holding when the score was served (as in the audit log).
SCORED_AT = "time"
#: Months of the risk model's outcome window (``reoffended_12m``).
DEFAULT_WINDOW_MONTHS = 12
#: Longest subject reference accepted (as the HTTP contract's).
MAX_REF_LENGTH = 128
_EARLIEST = pd.Timestamp("1900-01-01")
_LATEST = pd.Timestamp("2199-12-31")


class LinkStatus(StrEnum):
    """Why a score does or does not count in monitoring."""

    MATURED = "matured"
    WINDOW_OPEN = "window still open"
    FOLLOW_UP_SHORT = "follow-up ended before the window closed"
    OUTCOME_BEFORE_SCORE = "first sanction recorded on or before the score"
    NO_RECORD = "no outcome record"


class _Violations:
    """Violations of one table, at most ``MAX_ROWS_PER_CHECK`` rows listed per check."""

    def __init__(self) -> None:
        self.found: list[Violation] = []

    def rows(self, column: str, mask: np.ndarray, reasons: list[str] | str) -> None:
        positions = np.flatnonzero(mask)
        if positions.size == 0:
            return
        texts = [reasons] * positions.size if isinstance(reasons, str) else reasons
        for position, reason in zip(positions[:MAX_ROWS_PER_CHECK], texts, strict=False):
            self.found.append(Violation(column, int(position) + 1, reason))
        if positions.size > MAX_ROWS_PER_CHECK:
            more = positions.size - MAX_ROWS_PER_CHECK
            self.found.append(Violation(column, None, f"{more} more rows: {texts[0]}"))


def _dates(raw: pd.Series, column: str, out: _Violations, *, required: bool) -> pd.Series:
    """Parse ISO dates; name every cell that is not one."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        parsed = raw.dt.tz_localize(None) if raw.dt.tz is not None else raw
        parsed = parsed.astype("datetime64[ns]")
    else:
        text = raw.astype("string").str.strip().replace("", pd.NA)
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        unreadable = (text.notna() & parsed.isna()).to_numpy()
        out.rows(
            column,
            unreadable,
            [f"not a date (YYYY-MM-DD): {v!r}" for v in text.to_numpy()[unreadable]],
        )
    present = parsed.notna().to_numpy()
    if required:
        blank = raw.isna().to_numpy() | (raw.astype("string").str.strip() == "").to_numpy(
            dtype=bool, na_value=True
        )
        out.rows(column, blank, "missing value (this field is required)")
    far = present & ((parsed < _EARLIEST) | (parsed > _LATEST)).to_numpy(dtype=bool)
    out.rows(column, far, [f"implausible date: {v:%Y-%m-%d}" for v in parsed[far]])
    # Outcomes are dates: a time of day would shift windows by hours. Implausible dates
    # (reported above) are blanked first: before 1677 they do not fit nanoseconds.
    return parsed.mask(far).dt.normalize().astype("datetime64[ns]")


def _references(raw: pd.Series, out: _Violations) -> pd.Series:
    text = raw.astype("string")
    present = text.notna().to_numpy()
    out.rows(ID_FIELD, ~present, "missing value (this field is required)")
    too_long = present & (text.str.len() > MAX_REF_LENGTH).to_numpy(dtype=bool, na_value=False)
    out.rows(ID_FIELD, too_long, f"longer than {MAX_REF_LENGTH} characters")
    control = text.str.contains(r"[\x00-\x1f\x7f]", regex=True).to_numpy(dtype=bool, na_value=False)
    out.rows(ID_FIELD, control, "holds a control character")
    empty = (text.str.len() == 0).to_numpy(dtype=bool, na_value=False)
    out.rows(ID_FIELD, empty, "empty reference")
    repeated = text.duplicated(keep="first").to_numpy() & present
    if repeated.any():
        codes, _ = pd.factorize(text)
        known, first = np.unique(codes, return_index=True)
        rows = first[np.searchsorted(known, codes[repeated])] + 1
        out.rows(
            ID_FIELD,
            repeated,
            [
                f"duplicate id {v!r} (first seen in row {r}); one outcome row per person"
                for v, r in zip(text.to_numpy()[repeated], rows.tolist(), strict=True)
            ],
        )
    return text


def validate_outcomes(frame: pd.DataFrame, *, source: str = "outcomes") -> pd.DataFrame:
    """Check an outcomes table and return it with canonical types.

    Parameters
    ----------
    frame
        The table as read; columns :data:`OUTCOME_COLUMNS` (others are dropped).
    source
        Name used in the error message (usually the file path).

    Returns
    -------
    pandas.DataFrame
        ``subject_ref`` (string), ``outcome_date`` and ``follow_up_end``
        (``datetime64[ns]`` dates, ``NaT`` for no sanction), in that order.

    Raises
    ------
    SchemaValidationError
        With every violation: a missing column, an unreadable or missing
        date, a duplicate or malformed reference, a sanction dated after the
        end of follow-up, or no rows at all.
    """
    out = _Violations()
    missing = [c for c in OUTCOME_COLUMNS if c not in frame.columns]
    for column in missing:
        out.found.append(Violation(column, None, "missing required column"))
    if len(frame) == 0:
        out.found.append(Violation("*", None, "dataset has no rows"))
    if out.found:
        raise SchemaValidationError(out.found, source=source)
    table = frame.reset_index(drop=True)
    refs = _references(table[ID_FIELD], out)
    outcome = _dates(table[OUTCOME_DATE], OUTCOME_DATE, out, required=False)
    end = _dates(table[FOLLOW_UP_END], FOLLOW_UP_END, out, required=True)
    late = (outcome > end).to_numpy(dtype=bool)
    out.rows(
        OUTCOME_DATE,
        late,
        [
            f"sanction dated {o:%Y-%m-%d}, after the end of follow-up {e:%Y-%m-%d}"
            for o, e in zip(outcome[late], end[late], strict=True)
        ],
    )
    if out.found:
        raise SchemaValidationError(sorted(out.found, key=lambda v: v.row or 0), source=source)
    return pd.DataFrame({ID_FIELD: refs, OUTCOME_DATE: outcome, FOLLOW_UP_END: end})


def load_outcomes(path: Path) -> pd.DataFrame:
    """Read an outcomes file (``.csv`` or ``.parquet``) and validate it.

    Raises
    ------
    DatasetFormatError
        If the file cannot be read.
    SchemaValidationError
        As :func:`validate_outcomes`.
    """
    return validate_outcomes(read_table(path), source=str(path))


def _score_days(times: pd.Series) -> pd.Series:
    """Return the UTC calendar day each score was served."""
    stamps = pd.to_datetime(times, utc=True, format="ISO8601")
    return stamps.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")


def link_outcomes(
    scores: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    window_months: int = DEFAULT_WINDOW_MONTHS,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Attach each score's outcome under the matured-window rule.

    Parameters
    ----------
    scores
        One row per score served: at least ``subject_ref`` and ``time`` (when
        it was served; text or timestamps, UTC when no zone).
    outcomes
        As :func:`validate_outcomes` returns it.
    window_months
        Length of the outcome window from the day of the score.
    as_of
        The day monitoring looks from; windows closing after it are still
        open. Default: the latest ``follow_up_end`` in ``outcomes``.

    Returns
    -------
    pandas.DataFrame
        ``scores`` (same rows, same order, same index) plus ``window_end``,
        ``outcome`` (``Int8``: 1 a sanction inside the window, 0 none, NA
        not matured), ``matured`` (bool) and ``link_status``
        (:class:`LinkStatus` text). A sanction on the day of the score is
        taken to be the offence assessed, not a new one; it is excluded
        (``outcome before score``).
    """
    if window_months < 1:
        raise ValueError(f"window_months must be at least 1, got {window_months}")
    day = _score_days(scores[SCORED_AT])
    window_end = day + pd.DateOffset(months=window_months)
    # Plain object keys: matching Arrow-backed strings row by row cost seconds per 100,000.
    keyed = outcomes.set_index(pd.Index(outcomes[ID_FIELD].to_numpy(dtype=object)))
    refs = scores[ID_FIELD].to_numpy(dtype=object)
    matched = keyed.reindex(refs)
    has_record = matched[FOLLOW_UP_END].notna().to_numpy()  # required in every record
    sanction = pd.Series(matched[OUTCOME_DATE].to_numpy(), index=scores.index)
    end = pd.Series(matched[FOLLOW_UP_END].to_numpy(), index=scores.index)
    closed_by = outcomes[FOLLOW_UP_END].max() if as_of is None else pd.Timestamp(as_of)
    if closed_by.tzinfo is not None:
        closed_by = closed_by.tz_convert("UTC").tz_localize(None)

    before = (sanction <= day).to_numpy(dtype=bool)
    inside = ((sanction > day) & (sanction <= window_end)).to_numpy(dtype=bool)
    covered = (end >= window_end).to_numpy(dtype=bool)
    closed = (window_end <= closed_by).to_numpy(dtype=bool)
    status = np.select(
        [~has_record, before, ~closed, ~(inside | covered)],
        [
            LinkStatus.NO_RECORD.value,
            LinkStatus.OUTCOME_BEFORE_SCORE.value,
            LinkStatus.WINDOW_OPEN.value,
            LinkStatus.FOLLOW_UP_SHORT.value,
        ],
        default=LinkStatus.MATURED.value,
    )
    matured = status == LinkStatus.MATURED.value
    outcome = pd.array(np.where(inside, 1, 0).astype(np.int8), dtype="Int8")
    outcome[~matured] = pd.NA
    return scores.assign(
        window_end=window_end.to_numpy(),
        outcome=pd.Series(outcome, index=scores.index),
        matured=matured,
        link_status=pd.Categorical(status, categories=[s.value for s in LinkStatus]),
    )
