"""A batch body checked column by column: the fast way through a valid batch.

pydantic validates a 1,000-assessment body one assessment at a time (29
fields each, and the cross-field rules in Python): a quarter of the request.
:class:`ColumnarCheck` parses the body once and checks the same rules a
whole column at a time (types as sets, ranges and the cross-field rules as
array comparisons, free text with one search), all derived from
:data:`data.schema.ASSESSMENT_FIELDS` and :data:`data.schema.CROSS_FIELD_RULES`,
the schema pydantic's model is built from too.

It only ever says "valid, and these are the values" or "not sure": any body
it does not accept (a problem, or anything it does not check itself) goes
through pydantic (:func:`serving.scoring.parse_body`), which says what is
wrong in its own words. So an error is always worded as before, and an
accepted body gives the values pydantic would give (tested against it on
fuzzed bodies): every field in schema order, ``None`` for one not assessed,
a whole number sent for a real-valued field as a float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
from pydantic_core import from_json

from data.schema import (
    ASSESSMENT_FIELDS,
    CROSS_FIELD_RULES,
    FREE_TEXT_MAX_CHARS,
    FREE_TEXT_REFUSED_CHARACTER,
    Kind,
)

#: An assessment's values as validated: every field, in schema order, ``None`` when not assessed.
Row = dict[str, Any]

_NONE = type(None)


@dataclass(frozen=True, slots=True)
class CheckedBatch:
    """Valid assessments, as rows and as columns.

    ``rows``: each assessment's values (:data:`Row`); ``columns``: each field's
    values, in assessment order; ``numbers``: each numeric field's values as
    floats, NaN where not assessed.
    """

    rows: list[Row]
    columns: dict[str, tuple[Any, ...]]
    numbers: dict[str, np.ndarray]


_INTEGER_KINDS = (Kind.INTEGER, Kind.BINARY, Kind.NEED)


class ColumnarCheck:
    """Accept a valid batch body column by column, or leave it to pydantic.

    Parameters
    ----------
    max_batch
        Most assessments a body may hold (as :func:`serving.schemas.assessment_batch_model`).
    """

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self.names = tuple(spec.name for spec in ASSESSMENT_FIELDS)
        self._template: Row = dict.fromkeys(self.names)
        self._allowed = frozenset(self.names)
        self._get = itemgetter(*self.names)
        # For each column: the value types it may hold (None only when nullable).
        self._types: list[frozenset[type]] = []
        self._categories: list[tuple[int, frozenset[Any]]] = []
        self._texts: list[int] = []
        self._reals: list[int] = []  # real-valued: a whole number sent is kept as a float
        numeric: list[int] = []
        for j, spec in enumerate(ASSESSMENT_FIELDS):
            empty = {_NONE} if spec.nullable else set()
            if spec.kind is Kind.CATEGORY:
                self._types.append(frozenset({str} | empty))
                absent = {None} if spec.nullable else set()
                self._categories.append((j, frozenset(spec.categories) | absent))
            elif spec.kind is Kind.TEXT:
                self._types.append(frozenset({str} | empty))
                self._texts.append(j)
            elif spec.kind is Kind.NUMBER:
                self._types.append(frozenset({float, int} | empty))
                self._reals.append(j)
                numeric.append(j)
            elif spec.kind in _INTEGER_KINDS:
                self._types.append(frozenset({int} | empty))
                numeric.append(j)
            else:  # a kind this check does not know: every body goes to pydantic
                raise ValueError(f"no columnar check for {spec.kind}")
        self._numeric = numeric
        self._low = np.array([[ASSESSMENT_FIELDS[j].minimum] for j in numeric], dtype=np.float64)
        self._high = np.array([[ASSESSMENT_FIELDS[j].maximum] for j in numeric], dtype=np.float64)
        self._rules = [
            (numeric.index(self.names.index(r.lower)), numeric.index(self.names.index(r.upper)))
            for r in CROSS_FIELD_RULES
        ]
        self._refused = re.compile(FREE_TEXT_REFUSED_CHARACTER)

    def check(self, raw: bytes) -> CheckedBatch | None:
        """Return the assessments of a valid body, checked; ``None`` when not sure.

        ``None`` means pydantic must look at the body (it may still be valid).
        """
        try:
            body = from_json(raw)
        except ValueError:
            return None
        if type(body) is not dict or body.keys() != {"assessments"}:
            return None
        items = body["assessments"]
        if type(items) is not list or not 1 <= len(items) <= self.max_batch:
            return None
        if set(map(type, items)) != {dict} or not set().union(*items) <= self._allowed:
            return None
        template = self._template
        rows = [{**template, **item} for item in items]
        del body, items  # freed now, while the collector is paused (serving.scoring)
        columns = list(zip(*map(self._get, rows), strict=True))
        types = [set(map(type, column)) for column in columns]
        numbers = self._numbers(columns, types)
        if numbers is None:
            return None
        for j in self._reals:
            if int in types[j]:
                name = self.names[j]
                for row in rows:
                    if type(row[name]) is int:
                        row[name] = float(row[name])
                columns[j] = tuple(row[name] for row in rows)
        return self._batch(rows, columns, numbers)

    def from_rows(self, rows: list[Row]) -> CheckedBatch:
        """Return the batch of assessments pydantic validated (their values, in schema order)."""
        columns = list(zip(*map(self._get, rows), strict=True))
        numbers = np.array([columns[j] for j in self._numeric], dtype=np.float64)
        return self._batch(rows, columns, numbers)

    def _batch(self, rows: list[Row], columns: list[Any], numbers: np.ndarray) -> CheckedBatch:
        return CheckedBatch(
            rows,
            dict(zip(self.names, columns, strict=True)),
            {self.names[j]: numbers[k] for k, j in enumerate(self._numeric)},
        )

    def _numbers(self, columns: list[tuple[Any, ...]], types: list[set[type]]) -> np.ndarray | None:
        """Return the numeric columns as floats if every column holds what the schema allows.

        ``types`` holds each column's value types. ``None`` if a value is of the
        wrong type or outside its range, a required field is missing, or a
        cross-field rule is broken. Rows of the array are the numeric fields in
        schema order, NaN where not assessed.
        """
        for column_types, allowed in zip(types, self._types, strict=True):
            if not column_types <= allowed:
                return None  # a wrong type (a bool is no int), or a required field missing
        for j, categories in self._categories:
            if not set(columns[j]) <= categories:
                return None
        for j in self._texts:
            texts = columns[j]
            if min(map(len, texts)) < 1 or max(map(len, texts)) > FREE_TEXT_MAX_CHARS:
                return None
            if self._refused.search("".join(texts)) is not None:
                return None
        try:
            values = np.array([columns[j] for j in self._numeric], dtype=np.float64)
        except (OverflowError, ValueError):  # an integer too large for a float
            return None
        missing = np.isnan(values)
        # A NaN sent (the JSON parser reads NaN) is refused by pydantic. Only a column that
        # holds floats can hold one (the types above): its NaNs must be the values not sent.
        for k, j in enumerate(self._numeric):
            if float in types[j] and int(missing[k].sum()) != columns[j].count(None):
                return None
        with np.errstate(invalid="ignore"):
            inside = (values >= self._low) & (values <= self._high)
            if not bool(np.all(inside | missing)):
                return None
            # A rule is skipped where either value is missing (comparisons with NaN are false).
            if any(bool(np.any(values[lo] > values[hi])) for lo, hi in self._rules):
                return None
        return values
