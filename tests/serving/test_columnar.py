"""The columnar fast way through a batch gives what pydantic gives, or leaves the body to it.

Fuzzed bodies (valid ones and ones broken a field at a time) go through both
:class:`serving.columnar.ColumnarCheck` and :func:`serving.scoring.parse_body`:
whatever the fast check accepts, pydantic accepts with the same values (types
included) and digests; a body pydantic refuses, the fast check never accepts,
so its error is pydantic's. The scores body written from flat lists is the
bytes ``to_json`` gives of the score dictionaries.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pydantic_core import to_json

from benchmarks.support.assessments import assessment
from data.schema import ASSESSMENT_FIELDS, FIELDS_BY_NAME, Kind
from serving.audit import input_digests, row_digests
from serving.columnar import ColumnarCheck
from serving.errors import InvalidRequestError
from serving.registry_loader import load_model
from serving.schemas import assessment_batch_model
from serving.score_json import scores_body
from serving.scorer import scores_from_picks
from serving.scoring import checked_batch, parse_body
from serving.settings import Settings

MAX_BATCH = 50
MODEL = assessment_batch_model(MAX_BATCH)
CHECK = ColumnarCheck(MAX_BATCH)
HEAD = {"model_name": "desist-risk", "model_version": "3", "request_id": "r-1"}


def _wrong_values(name: str) -> list[Any]:
    """Values of every sort for field ``name``: inside, on and beyond its rules."""
    spec = FIELDS_BY_NAME[name]
    values: list[Any] = [None, True, False, "1", [], {}, 1.5, 0, -1, 10**30]
    if spec.kind is Kind.CATEGORY:
        values += [*spec.categories, spec.categories[0].upper(), "", "arson"]
    elif spec.kind is Kind.TEXT:
        values += ["", "x" * 128, "x" * 129, "a\x00b", "a\nb", "a\x85b", "a\u2028b", "a\x7f"]
        values += ['q"uote', "back\\slash", "},{", '},{"subject_ref":', "é☃🙂", "a,b", "  "]
    else:
        assert spec.minimum is not None and spec.maximum is not None
        low, high = spec.minimum, spec.maximum
        values += [low, high, low - 1, high + 1, float(low), float(high), low + 0.5]
        values += [high + 0.5, -0.0, 1e308, 1e-300, int(high), int(low)]
    return values


def _valid_values(name: str) -> list[Any]:
    """Values field ``name`` accepts (as far as its own rules go; cross-field rules aside)."""
    spec = FIELDS_BY_NAME[name]
    values: list[Any] = [None] if spec.nullable else []
    if spec.kind is Kind.CATEGORY:
        return values + list(spec.categories)
    if spec.kind is Kind.TEXT:
        return [*values, "x" * 128, 'q"uote', "back\\slash", '},{"subject_ref":', "é☃🙂", "a,b"]
    assert spec.minimum is not None and spec.maximum is not None
    low, high = int(spec.minimum), int(spec.maximum)
    values += [low, high, (low + high) // 2]
    if spec.kind is Kind.NUMBER:
        values += [float(low), float(high), low + 0.5, -0.0, 1e-300, high - 1e-9]
    return values


def _fuzzed_bodies(seed: int, count: int) -> list[bytes]:
    """Bodies of 1 to 12 assessments: valid ones, and ones changed in one to three ways."""
    rng = random.Random(seed)
    names = [spec.name for spec in ASSESSMENT_FIELDS]
    nullable = [spec.name for spec in ASSESSMENT_FIELDS if spec.nullable]
    bodies = []
    for _ in range(count):
        items = []
        gentle = rng.random() < 0.5  # only values the fields accept
        for i in range(rng.randint(1, 12)):
            item = assessment(subject_ref=f"case-{i}")
            for name in rng.sample(nullable if gentle else names, rng.randint(0, 4)):
                item.pop(name, None)  # not assessed (or a required field left out)
            for _ in range(rng.choice((0, 0, 1, 2, 3))):
                name = rng.choice(names)
                values = _valid_values(name) if gentle else _wrong_values(name)
                item[name] = rng.choice(values)
            if rng.random() < 0.03:
                item["colour"] = "red"
            items.append(item)
        bodies.append(json.dumps({"assessments": items}, ensure_ascii=rng.random() < 0.5).encode())
    # The JSON parser reads these; pydantic refuses them (or reads them its own way).
    bodies += [
        b'{"assessments": [{"subject_ref": "a", "age": 30, "total_sanctions": 1, '
        b'"offence_category": "theft", "months_offence_free": ' + text + b"}]}"
        for text in (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"12", b"1E2", b"0.0")
    ]
    # A NaN in a whole-number field, and one beside an assessment that leaves the field out.
    bodies += [
        b'{"assessments": [{"subject_ref": "a", "age": NaN, "total_sanctions": 1, '
        b'"offence_category": "theft"}]}',
        b'{"assessments": [{"subject_ref": "a", "age": 30, "total_sanctions": 1, '
        b'"offence_category": "theft"}, {"subject_ref": "b", "age": 30, "total_sanctions": 1, '
        b'"offence_category": "theft", "months_offence_free": NaN}]}',
    ]
    bodies += [
        b'{"assessments": [{"subject_ref": "a", "age": 30, "age": 31, "total_sanctions": 1, '
        b'"offence_category": "theft"}]}',
        b'{"assessments": [{"subject_ref": "\\ud800", "age": 30, "total_sanctions": 1, '
        b'"offence_category": "theft"}]}',
        b'{"assessments": []}',
        b'{"assessments": {}}',
        b'{"assessments": [1]}',
        b"[]",
        b"not json",
        json.dumps({"assessments": [assessment()], "extra": 1}).encode(),
        json.dumps({"assessments": [assessment()] * (MAX_BATCH + 1)}).encode(),
        json.dumps({"assessments": [assessment(age_first_sanction=30, age=29)]}).encode(),
        json.dumps({"assessments": [assessment(juvenile_sanctions=7, total_sanctions=6)]}).encode(),
    ]
    return bodies


def _pydantic(raw: bytes) -> tuple[list[Any] | None, Any]:
    """Return pydantic's assessments of ``raw`` (or ``None``) and its error (or ``None``)."""
    try:
        return list(parse_body(raw, MODEL).assessments), None
    except InvalidRequestError as err:
        return None, (err.errors(), str(err))


@pytest.mark.parametrize("seed", range(4))
def test_the_fast_check_accepts_only_what_pydantic_accepts_with_the_same_values(
    seed: int,
) -> None:
    accepted = valid = 0
    for raw in _fuzzed_bodies(seed, 400):
        batch = CHECK.check(raw)
        assessments, error = _pydantic(raw)
        valid += error is None
        if batch is None:
            continue
        accepted += 1
        assert error is None, raw
        assert assessments is not None
        expected = [vars(item) for item in assessments]
        assert batch.rows == expected
        # Types too (a whole number sent for a real is a float; True is no 1).
        assert [[type(v) for v in row.values()] for row in batch.rows] == [
            [type(v) for v in row.values()] for row in expected
        ]
        assert [list(row) for row in batch.rows] == [list(row) for row in expected]
        assert row_digests(batch.rows) == input_digests(assessments)
        for name, column in batch.columns.items():
            assert list(column) == [row[name] for row in expected]
    # The fast way is taken by every valid body here, not just declined.
    assert accepted == valid > 100


@pytest.mark.parametrize("seed", range(2))
def test_a_checked_batch_is_refused_in_pydantics_words(seed: int) -> None:
    for raw in _fuzzed_bodies(100 + seed, 200):
        assessments, error = _pydantic(raw)
        padded = raw + b" " * 5_000  # large enough to be checked column by column first
        if error is None:
            assert assessments is not None
            assert checked_batch(padded, MODEL).rows == [vars(a) for a in assessments]
            continue
        with pytest.raises(InvalidRequestError) as caught:
            checked_batch(padded, MODEL)
        # Compared as text: a NaN sent is named in the error, and NaN != NaN.
        assert repr((caught.value.errors(), str(caught.value))) == repr(_pydantic(padded)[1])


def test_valid_cohort_bodies_are_taken_the_fast_way(
    cohort_assessments: list[dict[str, Any]],
) -> None:
    raw = json.dumps({"assessments": cohort_assessments}).encode()
    batch = ColumnarCheck(1_000).check(raw)
    assert batch is not None
    expected = list(parse_body(raw, assessment_batch_model(1_000)).assessments)
    assert batch.rows == [vars(item) for item in expected]
    assert row_digests(batch.rows) == input_digests(expected)


def test_the_scores_body_is_the_bytes_of_the_score_dictionaries(
    settings: Settings, cohort_assessments: list[dict[str, Any]]
) -> None:
    scorer = load_model(settings).scorer
    model = assessment_batch_model(1_000)
    for items in (cohort_assessments, cohort_assessments[:1], cohort_assessments[:9]):
        batch = checked_batch(json.dumps({"assessments": items}).encode(), model)
        picks = scorer.picks(batch)
        refs = batch.columns["subject_ref"]
        body = scores_body(HEAD, refs, picks, scorer.features, batch.columns)
        expected = scores_from_picks(batch.rows, scorer.features, *picks)
        assert body == to_json({**HEAD, "scores": expected})
        assessments = parse_body(json.dumps({"assessments": items}).encode(), model).assessments
        assert expected == scorer.score(assessments)


def test_the_scores_body_writes_awkward_references_and_numbers_as_to_json_does() -> None:
    refs = ['q"uote', "back\\slash", '},{"subject_ref":', "é☃🙂", "a,b", '","']
    columns = {"subject_ref": refs, "age": [16, 100, 27, 30, 41, 52], "months": [0.1] * 6}
    columns["offence_category"] = ["theft", "burglary", "other", "theft", "drugs", "fraud"]
    features = ("age", "months", "offence_category")
    amounts = [[1e-7, -2.5e16, 0.0], [float("nan"), 3.0, -0.0]] + [[0.25, -0.5, 1.0]] * 4
    picks = (
        [1e-5, 0.5, 0.999999, 1.0, 0.0, 0.3],
        ["low", "medium", "high", "very high", "low", "low"],
        [[0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1], [2, 0, 1], [1, 2, 0]],
        amounts,
    )
    body = scores_body(HEAD, refs, picks, features, columns)
    rows = [{"subject_ref": r} | {f: columns[f][i] for f in features} for i, r in enumerate(refs)]
    assert body == to_json({**HEAD, "scores": scores_from_picks(rows, features, *picks)})


def test_the_scores_body_leaves_a_reason_not_assessed_to_the_dictionaries() -> None:
    columns = {"subject_ref": ["a"], "age": [None], "months": [2.0]}
    picks = ([0.5], ["medium"], [[0, 1]], [[0.0, 0.1]])
    assert scores_body(HEAD, ["a"], picks, ("age", "months"), columns) is None
    assert scores_body(HEAD, ["a"], ([0.5], ["medium"], [[]], [[]]), (), columns) is None
