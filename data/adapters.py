"""Source adapters: map another system's columns onto the canonical schema, by config.

A source of the same kind as one desist already knows (court records, a case
management export) should need a config file, not code. The ``[adapter]``
table of a job config says how each canonical field is made from the
source's columns, and which source columns must never become features::

    [adapter]
    id_column = "id"
    never_features = ["two_year_recid", "decile_score"]

    [adapter.fields]
    age = { column = "age" }
    sex = { column = "sex", values = { Male = "male", Female = "female" } }
    juvenile_sanctions = { sum = ["juv_fel_count", "juv_misd_count"] }
    offence_category = { column = "charge", keywords = [["theft", "theft"]], default = "other" }
    days_in_custody_at_assessment = { days_from = "c_jail_in", days_to = "screening_date", min = 0 }
    in_custody_at_assessment = { date = "c_jail_out", after = "screening_date" }
    age_first_sanction = { years_from = "dob", years_to = "first_conviction_date" }

Each rule is one of :class:`ColumnRule` (copy, optionally recoding values or
matching keywords), :class:`SumRule`, :class:`DaysRule`, :class:`YearsRule`
and :class:`AfterRule`. Canonical fields the source lacks are simply not
produced: validation adds them as "not assessed" and the models cope.

The adapter only renames and derives; :func:`data.validation.validate_frame`
checks the result against the schema afterwards.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from data.errors import SourceAdapterError, SourceValueProblem
from data.schema import FIELDS_BY_NAME, ID_FIELD, Kind

#: Rows named in an error message before the rest are left out.
ROWS_SHOWN = 5

#: Where unreadable or unmappable source values go: ``None`` raises at the
#: first column with one; a list collects every one, row by row.
Problems = list[SourceValueProblem] | None


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def sources(self) -> tuple[str, ...]:
        """Return the source columns the rule reads."""
        raise NotImplementedError

    def derive(self, frame: pd.DataFrame, name: str, problems: Problems = None) -> pd.Series:
        """Return the canonical field ``name`` made from ``frame`` (source columns checked).

        A value that cannot be read or mapped raises :class:`SourceAdapterError`,
        or, when ``problems`` is a list, is recorded there and left missing.
        """
        raise NotImplementedError


def _rows(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) + 1 for i in np.flatnonzero(mask)[:ROWS_SHOWN])


def _refuse(
    problems: Problems,
    column: str,
    name: str,
    mask: np.ndarray,
    values: np.ndarray,
    describe: Callable[[object], str],
) -> None:
    """Raise for the first bad value in ``column``, or record every one in ``problems``."""
    if problems is None:
        raise SourceAdapterError(column, describe(values[0]), _rows(mask))
    problems.append(
        SourceValueProblem(
            column,
            name,
            tuple(int(i) for i in np.flatnonzero(mask)),
            tuple(describe(v) for v in values),
        )
    )


class ColumnRule(_Rule):
    """Take one source column, optionally recoding its values.

    Parameters
    ----------
    column
        The source column.
    values
        Source value to canonical value (e.g. ``Male`` to ``male``); a value
        present in the source but absent here is an error unless ``default``
        is given.
    keywords
        Ordered ``[pattern, value]`` pairs: the first regular expression found
        in the text (case-insensitive) gives the value; for free text such as
        a charge description.
    default
        Value for text that no entry of ``values`` or ``keywords`` matches.
    missing
        Value for an empty source cell; without it, empty stays missing
        ("not assessed").
    """

    column: str
    values: dict[str, str] | None = None
    keywords: tuple[tuple[str, str], ...] | None = None
    default: str | None = None
    missing: str | None = None

    @model_validator(mode="after")
    def _one_recoding(self) -> Self:
        if self.values is not None and self.keywords is not None:
            raise ValueError("give at most one of values and keywords")
        if self.default is not None and self.values is None and self.keywords is None:
            raise ValueError("default needs values or keywords")
        for pattern, _ in self.keywords or ():
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"keyword {pattern!r} is not a regular expression") from err
        return self

    def sources(self) -> tuple[str, ...]:
        """Return the source column."""
        return (self.column,)

    def derive(self, frame: pd.DataFrame, name: str, problems: Problems = None) -> pd.Series:
        """Return the column, recoded when the rule says so."""
        raw = frame[self.column]
        if self.values is None and self.keywords is None:
            return raw if self.missing is None else raw.astype("string").fillna(self.missing)
        text = raw.astype("string")
        present = text.notna().to_numpy()
        if self.values is not None:
            recoded = text.map(self.values, na_action="ignore").astype("string")
        else:
            recoded = pd.Series(pd.NA, index=text.index, dtype="string")
            lowered = text.str.lower()
            for pattern, value in self.keywords or ():
                hit = lowered.str.contains(pattern, regex=True, flags=re.IGNORECASE, na=False)
                recoded = recoded.mask(recoded.isna() & hit.astype(bool), value)
        unmatched = present & recoded.isna().to_numpy()
        if unmatched.any():
            if self.default is None:
                _refuse(
                    problems,
                    self.column,
                    name,
                    unmatched,
                    text.to_numpy()[unmatched],
                    lambda v: (
                        f"value {v!r} has no mapping to {name} (add it to values, or a default)"
                    ),
                )
                # Collected: the row is rejected, so its cell must not become `missing`.
                return recoded
            recoded = recoded.mask(pd.Series(unmatched, index=text.index), self.default)
        return recoded if self.missing is None else recoded.fillna(self.missing)


class SumRule(_Rule):
    """Add up numeric source columns (e.g. juvenile felony, misdemeanour and other counts)."""

    sum: tuple[str, ...] = Field(min_length=1)

    def sources(self) -> tuple[str, ...]:
        """Return the summed columns."""
        return self.sum

    def derive(self, frame: pd.DataFrame, name: str, problems: Problems = None) -> pd.Series:
        """Return the row sums; missing if any term is missing."""
        total = pd.Series(0.0, index=frame.index)
        for column in self.sum:
            total = total + _numbers(frame, column, name, problems)
        return total


def _numbers(frame: pd.DataFrame, column: str, name: str, problems: Problems) -> pd.Series:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = (raw.notna() & values.isna()).to_numpy()
    if bad.any():
        _refuse(problems, column, name, bad, raw.to_numpy()[bad], lambda v: f"not a number: {v!r}")
    return values


def _dates(frame: pd.DataFrame, column: str, name: str, problems: Problems) -> pd.Series:
    """Parse a date or date-time column to whole days; missing stays missing."""
    raw = frame[column]
    text = raw.astype("string").str.strip()
    parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    bad = (text.notna() & (text != "") & parsed.isna()).to_numpy()
    if bad.any():
        _refuse(problems, column, name, bad, raw.to_numpy()[bad], lambda v: f"not a date: {v!r}")
    return parsed.dt.normalize()


class DaysRule(_Rule):
    """Days from one date column to another (``days_to - days_from``), optionally clipped.

    Both are read to the day, so a time of day never makes a fraction.
    """

    days_from: str
    days_to: str
    min: float | None = None
    max: float | None = None

    def sources(self) -> tuple[str, ...]:
        """Return the two date columns."""
        return (self.days_from, self.days_to)

    def derive(self, frame: pd.DataFrame, name: str, problems: Problems = None) -> pd.Series:
        """Return whole days between the dates; missing if either date is."""
        end = _dates(frame, self.days_to, name, problems)
        days = (end - _dates(frame, self.days_from, name, problems)).dt.days
        return days.astype("float64").clip(lower=self.min, upper=self.max)


class YearsRule(_Rule):
    """Whole years from one date to another, e.g. age from date of birth and assessment date."""

    years_from: str
    years_to: str

    def sources(self) -> tuple[str, ...]:
        """Return the two date columns."""
        return (self.years_from, self.years_to)

    def derive(self, frame: pd.DataFrame, name: str, problems: Problems = None) -> pd.Series:
        """Return completed years (birthdays counted on the day); missing if either date is."""
        start = _dates(frame, self.years_from, name, problems)
        end = _dates(frame, self.years_to, name, problems)
        years = end.dt.year - start.dt.year
        before_anniversary = (end.dt.month < start.dt.month) | (
            (end.dt.month == start.dt.month) & (end.dt.day < start.dt.day)
        )
        return (years - before_anniversary.astype("Int64")).astype("float64")


class AfterRule(_Rule):
    """1 if the date in ``date`` falls after the date in ``after``, else 0.

    For a fact known on the reference date from a later record: "still held
    on the assessment date" is "release date after the assessment date",
    which was known that day even though the release date was not.
    ``missing`` is the value when ``date`` is empty (e.g. never jailed).
    """

    date: str
    after: str
    missing: int | None = Field(default=0, ge=0, le=1)

    def sources(self) -> tuple[str, ...]:
        """Return the event date and the reference date."""
        return (self.date, self.after)

    def derive(self, frame: pd.DataFrame, name: str, problems: Problems = None) -> pd.Series:
        """Return 1 / 0, or ``missing`` where the event date is empty."""
        event = _dates(frame, self.date, name, problems)
        reference = _dates(frame, self.after, name, problems)
        later = (event > reference).astype("float64")
        fill = np.nan if self.missing is None else float(self.missing)
        return later.where(event.notna(), fill).where(reference.notna(), np.nan)


FieldRule = ColumnRule | SumRule | DaysRule | YearsRule | AfterRule


class SourceAdapter(BaseModel):
    """How one source's columns become canonical assessment columns.

    Attributes
    ----------
    id_column
        The source's identifier column; the output holds it as
        :data:`data.schema.ID_FIELD`, as text.
    fields
        Canonical field name to the rule that makes it.
    never_features
        Source columns that must never feed a feature: recorded after the
        outcome, derived from it, or another tool's output. A canonical field
        made from one of them is itself never a feature (see
        :attr:`never_feature_fields`); it may only be an outcome, an audited
        attribute or a comparison score.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id_column: str
    fields: dict[str, FieldRule] = Field(min_length=1)
    never_features: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _canonical_and_safe(self) -> Self:
        for name, rule in self.fields.items():
            spec = FIELDS_BY_NAME.get(name)
            if spec is None:
                raise ValueError(f"fields.{name}: not a field of the assessment schema")
            if name == ID_FIELD:
                raise ValueError(f"fields.{name}: the identifier comes from id_column")
            leaking = sorted(set(rule.sources()) & set(self.never_features))
            if leaking and spec.feature_allowed:
                raise ValueError(
                    f"fields.{name}: made from {', '.join(leaking)}, listed in never_features, "
                    f"but {name} may be a model feature"
                )
            if isinstance(rule, AfterRule | DaysRule | YearsRule | SumRule) and not spec.is_numeric:
                raise ValueError(f"fields.{name}: a {spec.kind.value} field needs a column rule")
            if spec.kind is Kind.CATEGORY and isinstance(rule, ColumnRule):
                targets = set((rule.values or {}).values()) | {v for _, v in rule.keywords or ()}
                targets |= {v for v in (rule.default, rule.missing) if v is not None}
                unknown = sorted(targets - set(spec.categories))
                if unknown:
                    raise ValueError(
                        f"fields.{name}: {unknown} not among its categories {list(spec.categories)}"
                    )
        return self

    @property
    def never_feature_fields(self) -> tuple[str, ...]:
        """Canonical fields made from a never-feature source column."""
        never = set(self.never_features)
        return tuple(n for n, rule in self.fields.items() if never & set(rule.sources()))

    def source_columns(self) -> tuple[str, ...]:
        """Return every source column the adapter reads, id first."""
        columns = [self.id_column]
        for rule in self.fields.values():
            columns += rule.sources()
        return tuple(dict.fromkeys(columns))

    def apply(self, frame: pd.DataFrame, *, problems: Problems = None) -> pd.DataFrame:
        """Return ``frame`` as canonical columns: the id, then each field in config order.

        The result is not validated: pass it to
        :func:`data.validation.validate_frame` (or, for a chunk of a file
        scored in batches, :func:`data.validation.check_rows` with the
        ``problems`` collected here).

        Parameters
        ----------
        frame
            The source table in its own columns.
        problems
            ``None`` (training: one bad value stops the job, naming it) or a
            list that receives every value that cannot be read or mapped,
            row by row; those cells are left missing and the rows must be
            rejected.

        Raises
        ------
        SourceAdapterError
            Naming the column when a source column is missing, or, unless
            collected, a value cannot be read or mapped (with the first rows
            concerned).
        """
        missing = [c for c in self.source_columns() if c not in frame.columns]
        if missing:
            raise SourceAdapterError(
                ", ".join(missing), "missing from the source (the adapter reads it)"
            )
        source = frame.reset_index(drop=True)
        out: dict[str, pd.Series] = {ID_FIELD: source[self.id_column].astype("string")}
        for name, rule in self.fields.items():
            out[name] = rule.derive(source, name, problems)
        return pd.DataFrame(out)


def make_adapter(table: Mapping[str, Any], source: str = "adapter") -> SourceAdapter:
    """Validate an ``[adapter]`` table into a :class:`SourceAdapter`.

    Raises
    ------
    SourceAdapterError
        Naming the offending key and why.
    """
    try:
        return SourceAdapter.model_validate(table)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "adapter"
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'adapter'}: {e['msg']}" for e in err.errors()
        )
        raise SourceAdapterError(f"{source} [adapter] {where}", reasons) from err


def load_adapter(path: Path) -> SourceAdapter | None:
    """Read the ``[adapter]`` table of a TOML config file.

    Returns
    -------
    SourceAdapter or None
        None when the file has no ``[adapter]`` table (the source already
        uses canonical columns).

    Raises
    ------
    SourceAdapterError
        If the file cannot be read or the table is invalid.
    """
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise SourceAdapterError(str(path), f"cannot read config ({err})") from err
    table = raw.get("adapter")
    if table is None:
        return None
    return make_adapter(table, source=str(path))
