"""Check a table against the assessment schema and give it canonical types.

Every check is vectorised, so a million-row cohort validates in about a
second, and every violation is collected (column, row and reason) before the
table is refused: a user fixes a file once, not once per error.

The same checks serve two callers: :func:`validate_frame` refuses a table
with any violation (training: a model is never fitted on part of a file);
:func:`check_rows` keeps the valid rows and names every rejected one (batch
scoring: a bad row is reported, and does not stop a million good ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.duplicate_ids import SeenIds, find_repeats
from data.errors import SchemaValidationError, SourceValueProblem, Violation
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


class _Collector:
    """Violations found so far, and the rows they reject.

    ``first_row`` is the data row number of the table's first row (a chunk
    of a file starts further down); ``limit`` caps the rows listed per check
    (``None`` lists every one); ``seen_ids`` carries identifiers across chunks.
    """

    def __init__(
        self,
        n_rows: int,
        *,
        first_row: int = 1,
        limit: int | None = MAX_ROWS_PER_CHECK,
        seen_ids: SeenIds | None = None,
    ) -> None:
        self.violations: list[Violation] = []
        self.first_row = first_row
        self.limit = limit
        self.seen_ids = seen_ids
        self.rejected = np.zeros(n_rows, dtype=bool)

    def add_rows(self, column: str, mask: np.ndarray, reason_of_row: list[str] | str) -> None:
        positions = np.flatnonzero(mask)
        if positions.size == 0:
            return
        self.rejected[positions] = True
        rows = positions + self.first_row
        reasons = [reason_of_row] * rows.size if isinstance(reason_of_row, str) else reason_of_row
        shown = rows.size if self.limit is None else self.limit
        for row, reason in zip(rows[:shown].tolist(), reasons, strict=False):
            self.violations.append(Violation(column, row, reason))
        if rows.size > shown:
            first = reasons[0].split(":")[0]
            self.violations.append(
                Violation(column, None, f"{rows.size - shown} more rows: {first}")
            )

    def add(self, column: str, reason: str) -> None:
        self.violations.append(Violation(column, None, reason))


def _check_numeric(spec: FieldSpec, raw: pd.Series, out: _Collector) -> pd.Series:
    values: pd.Series
    if _is_number_column(raw):
        # Typed already (Parquet, or a CSV column of numbers): every value is a number
        # or missing, so nothing to parse; kept in its type when that is the canonical one.
        number = raw.to_numpy(dtype="float64", na_value=np.nan)
        is_nan = np.isnan(number)
        present = ~is_nan
        same_type = raw.dtype == pandas_dtype(spec)
        values = raw if same_type else pd.Series(number, index=raw.index)
    else:
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
            [spec.out_of_range_reason(v) for v in number[out_of_range].tolist()],
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


def _is_number_column(raw: pd.Series) -> bool:
    """Whether a column holds numbers (or missing values) only: integers or floats, no text."""
    kind = raw.dtype.kind
    return kind in "iuf" and not isinstance(raw.dtype, pd.CategoricalDtype)


def _distinct_text(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's code among the column's distinct texts (-1: missing), and the texts."""
    if isinstance(raw.dtype, pd.StringDtype):
        text = raw
    elif not raw.notna().any():
        # An empty column reads as floats: nothing to cast.
        return np.full(len(raw), -1, dtype=np.intp), np.empty(0, dtype=object)
    else:
        text = raw.astype("string")
    row_codes, distinct = pd.factorize(text)
    return row_codes, np.asarray(distinct, dtype=object)


def _check_category(spec: FieldSpec, raw: pd.Series, out: _Collector) -> pd.Series:
    is_coded = isinstance(raw.dtype, pd.CategoricalDtype)
    names = np.array([str(c) for c in raw.cat.categories] if is_coded else [], dtype=object)
    if is_coded and len(set(names)) == names.size:
        # Parquet and pandas hand categories over as codes: check the few distinct
        # values, not every row's text, and keep the codes (no round trip through text).
        codes = raw.cat.codes.to_numpy()
        present = codes >= 0
        allowed = np.append(np.isin(names, spec.categories), True)  # code -1: missing
        unknown = ~allowed[codes]
        values = names[codes[unknown]]
        checked = raw.cat.rename_categories(names.tolist()).cat.set_categories(
            list(spec.categories)
        )
    else:
        # Text, as a CSV reader hands it over (other values are cast to text one by
        # one): look up the few distinct values, not every row's text. Casting a
        # million strings to the categories took most of a CSV chunk's checks.
        # Factorized as text only: on raw values factorize would merge 1, 1.0 and True.
        row_codes, names = _distinct_text(raw)
        # Position -1 (appended) stands for missing and for a value not in the list.
        position = np.append(pd.Index(list(spec.categories)).get_indexer(names), -1)
        codes = position[row_codes]
        present = row_codes >= 0
        unknown = present & (codes < 0)
        values = names[row_codes[unknown]]
        checked = pd.Series(
            pd.Categorical.from_codes(codes, dtype=pandas_dtype(spec)), index=raw.index
        )
    if unknown.any():
        out.add_rows(
            spec.name,
            unknown,
            [spec.unknown_category_reason(v) for v in values],
        )
    if not spec.nullable:
        out.add_rows(spec.name, ~present, "missing value (this field is required)")
    return checked


def _check_text(spec: FieldSpec, raw: pd.Series, out: _Collector) -> pd.Series:
    text = raw.astype("string")
    present = text.notna().to_numpy()
    out.add_rows(spec.name, ~present, "missing value (this field is required)")
    if spec.name == ID_FIELD:
        _check_duplicates(spec, text, present, out)
    return text


def _check_duplicates(
    spec: FieldSpec, text: pd.Series, present: np.ndarray, out: _Collector
) -> None:
    values = text.to_numpy(dtype=object)
    given = np.flatnonzero(present)
    # Hashed once: the same hashes find repeats within the chunk and in earlier chunks.
    hashes = pd.util.hash_array(values[given], categorize=False)
    repeated, first = find_repeats(values, given, hashes)
    if repeated.any():
        out.add_rows(
            spec.name,
            repeated,
            [
                f"duplicate id {v!r} (first seen in row {row})"
                for v, row in zip(values[repeated], (first + out.first_row).tolist(), strict=True)
            ],
        )
    if out.seen_ids is None:
        return
    new = ~repeated[given]
    earlier = out.seen_ids.first_rows(hashes[new])
    again = np.zeros(len(text), dtype=bool)
    again[given[new][earlier > 0]] = True
    out.add_rows(
        spec.name,
        again,
        [
            f"duplicate id {v!r} (first seen in row {row})"
            for v, row in zip(values[again], earlier[earlier > 0].tolist(), strict=True)
        ],
    )
    # Distinct within the chunk, and not seen before: stored without a search for repeats.
    out.seen_ids.add_new(hashes[new][earlier == 0], given[new][earlier == 0] + out.first_row)


def _check_table(
    frame: pd.DataFrame, require: Iterable[str], out: _Collector
) -> dict[str, pd.Series]:
    """Run every column and cross-field check; return each schema column as checked."""
    required = set(require)
    clean: dict[str, pd.Series] = {}
    index = pd.RangeIndex(len(frame))
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
    return clean


def _canonical(clean: dict[str, pd.Series]) -> pd.DataFrame:
    return pd.DataFrame(
        {name: values.astype(pandas_dtype(FIELDS_BY_NAME[name])) for name, values in clean.items()}
    )


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
    n_rows = len(frame)
    out = _Collector(n_rows)
    clean = _check_table(frame, require, out)
    for target in (spec.name for spec in FIELDS if spec.role is Role.TARGET):
        if target in clean and n_rows > 0:
            classes = pd.unique(clean[target].dropna())
            if len(classes) < 2:
                out.add(target, f"target has a single class ({classes.tolist()}); need 0 and 1")
    if n_rows == 0:
        out.add("*", "dataset has no rows")

    if out.violations:
        raise SchemaValidationError(out.violations, source=source)
    return _canonical(clean)


@dataclass(frozen=True, slots=True)
class RowCheck:
    """A table split into the rows that pass the schema and the rows that do not.

    Attributes
    ----------
    valid
        The passing rows with canonical types (as :func:`validate_frame`
        returns them), indexed by their data row numbers.
    violations
        Every violation of every rejected row, none summarised; a rejected
        row has at least one.
    rejected_rows
        Data row numbers of the rejected rows, ascending.
    """

    valid: pd.DataFrame
    violations: list[Violation]
    rejected_rows: np.ndarray


def check_rows(
    frame: pd.DataFrame,
    *,
    first_row: int = 1,
    seen_ids: SeenIds | None = None,
    source: str = "dataset",
    source_problems: Sequence[SourceValueProblem] = (),
) -> RowCheck:
    """Check every row of ``frame``; keep the valid ones and name every rejected one.

    Parameters
    ----------
    frame
        The table (or one chunk of a file) as read.
    first_row
        Data row number of ``frame``'s first row in its file (from 1 after
        the header), so that violations name rows of the file, not the chunk.
    seen_ids
        Identifiers of earlier chunks of the same file: a repeat of one is a
        duplicate, as it is within a chunk. ``frame``'s identifiers are added.
    source
        Name used in the error message (usually the file path).
    source_problems
        Values the source adapter could not read or map in ``frame``
        (:meth:`data.adapters.SourceAdapter.apply` with ``problems``): their
        rows are rejected with the adapter's reason, which replaces the
        schema's complaint about the cell it left missing.

    Raises
    ------
    SchemaValidationError
        When a problem is not a row's but the table's (a required column is
        absent): no row can then be scored.
    """
    out = _Collector(len(frame), first_row=first_row, limit=None, seen_ids=seen_ids)
    clean = _check_table(frame, (), out)
    whole_table = [v for v in out.violations if v.row is None]
    if whole_table:
        raise SchemaValidationError(whole_table, source=source)
    if source_problems:
        # A cell the adapter could not map is empty now; "required" would misstate why.
        emptied = {
            (position + first_row, problem.field)
            for problem in source_problems
            for position in problem.positions
        }
        out.violations = [v for v in out.violations if (v.row, v.column) not in emptied]
        for problem in source_problems:
            mask = np.zeros(len(frame), dtype=bool)
            mask[list(problem.positions)] = True
            out.add_rows(problem.column, mask, list(problem.reasons))
    keep = ~out.rejected
    valid = _canonical({name: values[keep] for name, values in clean.items()})
    rows = np.arange(first_row, first_row + len(frame))
    valid.index = pd.Index(rows[keep], name="row")
    return RowCheck(
        valid=valid,
        violations=sorted(out.violations, key=lambda v: v.row or 0),
        rejected_rows=rows[out.rejected],
    )
