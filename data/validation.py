"""Check a table against the assessment schema and give it canonical types.

Every check is vectorised, so a million-row cohort validates in about a
second, and every violation is collected (column, row and reason) before the
table is refused: a user fixes a file once, not once per error.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from data.errors import SchemaValidationError, Violation
from data.schema import (
    CROSS_FIELD_RULES,
    FIELDS,
    FIELDS_BY_NAME,
    ID_FIELD,
    FieldSpec,
    Kind,
    Role,
)

#: Rows listed per (column, reason) before the rest are summarised, so that a
#: file with a wholly broken column does not produce millions of objects.
MAX_ROWS_PER_CHECK = 1000


def pandas_dtype(spec: FieldSpec) -> str | pd.CategoricalDtype:
    """Return the canonical in-memory dtype of a field.

    Integers use pandas' nullable types so that "not assessed" stays distinct
    from zero; categories keep their full category list so encoders see every
    level even when a sample lacks one.
    """
    if spec.kind is Kind.INTEGER:
        return "Int16"
    if spec.kind in (Kind.BINARY, Kind.NEED):
        return "Int8"
    if spec.kind is Kind.NUMBER:
        return "float64"
    if spec.kind is Kind.CATEGORY:
        return pd.CategoricalDtype(list(spec.categories))
    return "string"


def _rows(mask: np.ndarray) -> np.ndarray:
    """1-based data row numbers where ``mask`` is true."""
    return np.flatnonzero(mask) + 1


class _Collector:
    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def add_rows(self, column: str, mask: np.ndarray, reason_of_row: list[str] | str) -> None:
        rows = _rows(mask)
        if rows.size == 0:
            return
        reasons = [reason_of_row] * rows.size if isinstance(reason_of_row, str) else reason_of_row
        for row, reason in zip(rows[:MAX_ROWS_PER_CHECK], reasons, strict=False):
            self.violations.append(Violation(column, int(row), reason))
        if rows.size > MAX_ROWS_PER_CHECK:
            first = reasons[0].split(":")[0]
            self.violations.append(
                Violation(column, None, f"{rows.size - MAX_ROWS_PER_CHECK} more rows: {first}")
            )

    def add(self, column: str, reason: str) -> None:
        self.violations.append(Violation(column, None, reason))


def _check_numeric(spec: FieldSpec, raw: pd.Series, out: _Collector) -> pd.Series:
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    present = raw.notna().to_numpy()
    number = values.to_numpy(dtype="float64", na_value=np.nan)
    is_nan = np.isnan(number)
    not_a_number = present & is_nan
    if not_a_number.any():
        bad = raw.to_numpy()[not_a_number]
        out.add_rows(spec.name, not_a_number, [f"not a number: {v!r}" for v in bad])
    if not spec.nullable:
        out.add_rows(spec.name, ~present, "missing value (this field is required)")
    finite = ~is_nan
    if np.isinf(number).any():
        out.add_rows(spec.name, np.isinf(number), "not a finite number")
        finite &= ~np.isinf(number)
    lo = -np.inf if spec.minimum is None else spec.minimum
    hi = np.inf if spec.maximum is None else spec.maximum
    out_of_range = finite & ((number < lo) | (number > hi))
    if out_of_range.any():
        out.add_rows(
            spec.name,
            out_of_range,
            [f"out of range ({spec.allowed_text}): {v:g}" for v in number[out_of_range]],
        )
    if spec.kind is not Kind.NUMBER:
        fractional = finite & ~out_of_range & (np.floor(number) != number)
        if fractional.any():
            out.add_rows(
                spec.name,
                fractional,
                [f"not a whole number: {v:g}" for v in number[fractional]],
            )
    return values


def _check_category(spec: FieldSpec, raw: pd.Series, out: _Collector) -> pd.Series:
    text = raw.astype("string")
    present = text.notna().to_numpy()
    known = text.isin(spec.categories).to_numpy(dtype=bool, na_value=False)
    unknown = present & ~known
    if unknown.any():
        out.add_rows(
            spec.name,
            unknown,
            [
                f"unknown category {v!r} (expected {spec.allowed_text})"
                for v in text.to_numpy()[unknown]
            ],
        )
    if not spec.nullable:
        out.add_rows(spec.name, ~present, "missing value (this field is required)")
    return text


def _check_text(spec: FieldSpec, raw: pd.Series, out: _Collector) -> pd.Series:
    text = raw.astype("string")
    present = text.notna().to_numpy()
    out.add_rows(spec.name, ~present, "missing value (this field is required)")
    if spec.name == ID_FIELD:
        duplicated = (text.duplicated(keep="first") & text.notna()).to_numpy()
        if duplicated.any():
            first_row = {v: i + 1 for i, v in reversed(list(enumerate(text.to_numpy())))}
            out.add_rows(
                spec.name,
                duplicated,
                [
                    f"duplicate id {v!r} (first seen in row {first_row[v]})"
                    for v in text.to_numpy()[duplicated]
                ],
            )
    return text


def validate_frame(
    frame: pd.DataFrame,
    *,
    require: Iterable[str] = (),
    source: str = "dataset",
) -> pd.DataFrame:
    """Validate ``frame`` against the schema and return it with canonical types.

    Parameters
    ----------
    frame
        The table as read: values may be strings, numbers or missing.
    require
        Columns that must be present besides the schema's required fields
        (for training: the target; for pathway learning: the referrals).
        Absent nullable fields are added as all "not assessed".
    source
        Name used in the error message (usually the file path).

    Returns
    -------
    pandas.DataFrame
        Only schema columns, in schema order, with :func:`pandas_dtype` types.
        Columns the schema does not know are dropped.

    Raises
    ------
    SchemaValidationError
        With every violation found, when there is at least one.
    """
    out = _Collector()
    required = set(require)
    clean: dict[str, pd.Series] = {}
    n_rows = len(frame)
    index = pd.RangeIndex(n_rows)
    for spec in FIELDS:
        if spec.name not in frame.columns:
            is_assessment_field = spec.role.value in ("id", "static", "need", "protected")
            if spec.name in required or (is_assessment_field and not spec.nullable):
                out.add(spec.name, "missing required column")
            elif is_assessment_field:
                clean[spec.name] = pd.Series(index=index, dtype=pandas_dtype(spec))
            continue
        raw = frame[spec.name].reset_index(drop=True)
        if spec.is_numeric:
            checked = _check_numeric(spec, raw, out)
        elif spec.kind is Kind.CATEGORY:
            checked = _check_category(spec, raw, out)
        else:
            checked = _check_text(spec, raw, out)
        clean[spec.name] = checked

    for rule in CROSS_FIELD_RULES:
        if rule.lower in clean and rule.upper in clean:
            lower = clean[rule.lower].to_numpy(dtype="float64", na_value=np.nan)
            upper = clean[rule.upper].to_numpy(dtype="float64", na_value=np.nan)
            with np.errstate(invalid="ignore"):
                broken = lower > upper
            out.add_rows(
                rule.lower,
                broken,
                [
                    f"{rule.reason} ({rule.lower} {lo:g} > {rule.upper} {hi:g})"
                    for lo, hi in zip(lower[broken], upper[broken], strict=True)
                ],
            )

    for target in (spec.name for spec in FIELDS if spec.role is Role.TARGET):
        if target in clean and n_rows > 0:
            classes = pd.unique(clean[target].dropna())
            if len(classes) < 2:
                out.add(target, f"target has a single class ({classes.tolist()}); need 0 and 1")
    if n_rows == 0:
        out.add("*", "dataset has no rows")

    if out.violations:
        raise SchemaValidationError(out.violations, source=source)

    return pd.DataFrame(
        {name: values.astype(pandas_dtype(FIELDS_BY_NAME[name])) for name, values in clean.items()}
    )
