"""The domain step of a batch request, without HTTP: validate, answer, build the audit entry."""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from benchmarks.support.assessments import assessment
from serving.audit import AuditRecord, input_digests
from serving.columnar import CheckedBatch
from serving.errors import InvalidRequestError
from serving.keys import Client
from serving.registry_loader import load_model
from serving.schemas import BATCH_TOO_LARGE, assessment_batch_model
from serving.scorer import Picks
from serving.scoring import (
    _COLUMNAR_BYTES,
    _answer_few,
    _answer_many,
    parse_body,
    score_batch,
)
from serving.settings import Settings

CLIENT = Client(name="case-system", scope="score", key_id="k1")


@dataclass
class FixedScorer:
    """Answers every assessment with the same probability, in the shape of a real score."""

    features: tuple[str, ...] = ()

    def score(self, assessments: list[BaseModel]) -> list[dict[str, Any]]:
        return [
            {
                "subject_ref": item.subject_ref,  # type: ignore[attr-defined]
                "risk_probability": 0.25,
                "risk_band": "low",
                "reasons": [],
            }
            for item in assessments
        ]

    def picks(self, batch: CheckedBatch) -> Picks:  # the same answers, for a large batch
        n = len(batch.rows)
        return [0.25] * n, ["low"] * n, [[] for _ in range(n)], [[] for _ in range(n)]


@dataclass
class FakeModel:
    name: str = "desist-risk"
    version: str = "7"
    scorer: FixedScorer = field(default_factory=FixedScorer)


def body(*items: dict[str, Any]) -> bytes:
    return json.dumps({"assessments": list(items)}).encode()


def test_a_valid_batch_is_parsed_in_one_pass() -> None:
    parsed = parse_body(body(assessment(), assessment(subject_ref="b")), assessment_batch_model(5))
    assert [item.subject_ref for item in parsed.assessments] == ["case-0001", "b"]


def test_an_invalid_batch_raises_every_problem_without_urls() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_body(body(assessment(age=3), assessment(colour="red")), assessment_batch_model(5))
    problems = caught.value.errors()
    assert len(problems) == 2
    # The inputs stay (a range or category message names the value sent); no docs URL.
    assert all("url" not in problem for problem in problems)
    assert str(caught.value) == "2 problem(s) in the request"


def test_an_oversized_batch_fails_before_its_items() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_body(body(*[assessment()] * 3), assessment_batch_model(2))
    assert [problem["type"] for problem in caught.value.errors()] == [BATCH_TOO_LARGE]


def test_score_batch_returns_the_answer_with_its_audit_entry() -> None:
    raw = body(assessment(subject_ref="a"), assessment(subject_ref="b"))
    (content, bands), entry = score_batch(
        raw,
        assessment_batch_model(5),
        FakeModel(),
        CLIENT,
        "req-1",  # type: ignore[arg-type]
    )
    answer = json.loads(content)
    assert list(answer) == ["model_name", "model_version", "request_id", "scores"]
    assert (answer["model_version"], answer["request_id"]) == ("7", "req-1")
    assert [score["subject_ref"] for score in answer["scores"]] == ["a", "b"]
    assert bands == ["low", "low"]
    assert (entry.kind, entry.client, entry.request_id) == ("scores", "case-system", "req-1")
    assert (entry.model_name, entry.model_version) == ("desist-risk", "7")
    assert [record.subject_ref for record in entry.records] == ["a", "b"]
    assert all(isinstance(record, AuditRecord) for record in entry.records)


def test_many_problems_are_counted_and_only_the_first_described() -> None:
    model = assessment_batch_model(1000)
    # Wrong types, not unknown fields: they pass the screen and reach validation.
    item = {**assessment(), "age": "old", "total_sanctions": "many", "juvenile_sanctions": "x"}
    raw = json.dumps({"assessments": [item] * 500}).encode()
    with pytest.raises(InvalidRequestError) as caught:
        parse_body(raw, model)
    assert caught.value.total == 1500 and len(caught.value.problems) == 100
    assert caught.value.problems[0]["loc"][:2] == ("assessments", 0)
    unknown = json.dumps({"assessments": [{**assessment(), "u1": 0, "u2": 0}] * 20_000})
    with pytest.raises(InvalidRequestError) as caught:  # over the batch limit: 413 first
        parse_body(unknown.encode(), model)
    assert caught.value.problems[0]["type"] == "batch_too_large"


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'["a list"]',
        b"{}",
        b'{"assessments": null}',
        b'{"assessments": "abc"}',
        b'{"assessments": [1, "x", null]}',
        b'{"assessments": [], "extra": 1}',
        b'{"assessments": [{"age": NaN}]}',
        body({**assessment(), "age": 300, "offence_category": "arson", "colour": "red"}),
        body(assessment(), {**assessment(), "age": 30.0, "subject_ref": 5}),
        # A body the screen reads (over 64 kB), with fewer unknown fields than it refuses.
        body(*[assessment()] * 240, *[{**assessment(), "u1": 0, "age": 1}] * 40),
    ],
)
def test_problems_are_worded_as_json_validation_words_them(raw: bytes) -> None:
    # The body is parsed once and validated as Python objects; what a client is told
    # must not change for it: the same problems, in the same words, as from the bytes.
    model = assessment_batch_model(300)
    with pytest.raises(ValidationError) as expected:
        model.model_validate_json(raw)
    with pytest.raises(InvalidRequestError) as caught:
        parse_body(raw, model)
    assert repr(caught.value.errors()) == repr(expected.value.errors(include_url=False))
    assert caught.value.total == expected.value.error_count()


def test_a_large_valid_batch_parses_as_from_its_bytes() -> None:
    model = assessment_batch_model(1000)
    items = [assessment(subject_ref=f"s{i}", age=20 + i % 50) for i in range(600)]
    raw = body(*items, {**assessment(), "debt": None, "subject_ref": "é ü 中"})
    assert parse_body(raw, model) == model.model_validate_json(raw)


def test_many_unknown_fields_are_refused_before_validation() -> None:
    model = assessment_batch_model(1000)
    raw = body(assessment(), *[{**assessment(), "u1": 0, "u2": 0}] * 300)
    with pytest.raises(InvalidRequestError) as caught:
        parse_body(raw, model)
    assert caught.value.total == 600 and len(caught.value.problems) == 100
    assert caught.value.problems[0]["loc"] == ("assessments", 1, "u1")
    # Described by the screen (no message), not by validation.
    assert {(p["type"], p["msg"]) for p in caught.value.problems} == {("extra_forbidden", "")}


@pytest.mark.parametrize(
    "raw",
    [
        # A whole number for a real field, a repeated field (the last one counts), text
        # outside ASCII, and a field sent as null: as validation from Python objects reads them.
        body(
            assessment(months_offence_free=12),
            {**assessment(), "debt": None, "subject_ref": "é ü 中"},
        ),
        b'{"assessments": [{"subject_ref": "a", "age": 30, "age": 31, "age_first_sanction": 15,'
        b' "total_sanctions": 6, "juvenile_sanctions": 2, "offence_category": "burglary",'
        b' "custodial_history": 1, "months_offence_free": 4, "sex": "male"}]}',
    ],
)
def test_a_valid_body_validated_from_its_bytes_gives_the_same_assessments(raw: bytes) -> None:
    model = assessment_batch_model(5)
    parsed = parse_body(raw, model)
    reference = model.model_validate(json.loads(raw))
    assert type(parsed) is model and parsed == reference
    for got, expected in zip(parsed.assessments, reference.assessments, strict=True):
        assert type(got) is type(expected) and vars(got) == vars(expected)
        assert got.__pydantic_extra__ is None
        assert got.model_dump_json() == expected.model_dump_json()
    assert input_digests(parsed.assessments) == input_digests(reference.assessments)


def test_a_valid_body_is_not_parsed_into_python_objects_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_parse(raw: bytes) -> object:
        raise AssertionError("a valid body was parsed before validation")

    monkeypatch.setattr("serving.scoring.from_json", no_parse)
    items = [assessment(subject_ref=f"s{i}") for i in range(300)]  # over the screen's 64 kB
    parsed = parse_body(body(*items), assessment_batch_model(1000))
    assert [item.subject_ref for item in parsed.assessments] == [f"s{i}" for i in range(300)]


def test_a_body_with_unknown_fields_is_not_accepted_by_the_direct_validation() -> None:
    # Kept aside there (not refused one by one): the path that lists problems refuses them.
    model = assessment_batch_model(5)
    outer = json.dumps({"assessments": [assessment()], "extra": 1}).encode()
    for raw in (body({**assessment(), "colour": "red"}), outer):
        with pytest.raises(InvalidRequestError) as caught:
            parse_body(raw, model)
        assert [problem["type"] for problem in caught.value.errors()] == ["extra_forbidden"]


@dataclass
class CollectorWatchingScorer(FixedScorer):
    """Notes whether the cyclic garbage collector runs while it scores."""

    seen: list[bool] = field(default_factory=list)

    def score(self, assessments: list[BaseModel]) -> list[dict[str, Any]]:
        self.seen.append(gc.isenabled())
        return super().score(assessments)

    def picks(self, batch: CheckedBatch) -> Picks:
        self.seen.append(gc.isenabled())
        return super().picks(batch)


def test_the_collector_is_held_off_while_a_batch_is_answered_and_restored_after() -> None:
    watching = CollectorWatchingScorer()
    model = FakeModel(scorer=watching)
    raw = body(assessment())
    score_batch(raw, assessment_batch_model(5), model, CLIENT, "r1")  # type: ignore[arg-type]
    assert watching.seen == [False] and gc.isenabled()
    with pytest.raises(InvalidRequestError):  # a refused batch restores it too
        score_batch(b"{}", assessment_batch_model(5), model, CLIENT, "r2")  # type: ignore[arg-type]
    assert gc.isenabled()
    many = body(*[assessment(subject_ref=f"s{i}") for i in range(40)])  # the columnar way
    score_batch(many, assessment_batch_model(50), model, CLIENT, "r4")  # type: ignore[arg-type]
    assert watching.seen == [False, False] and gc.isenabled()
    gc.disable()  # paused by someone else: left paused
    try:
        score_batch(raw, assessment_batch_model(5), model, CLIENT, "r3")  # type: ignore[arg-type]
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_batch_leaves_the_collector_only_its_audit_rows_when_it_resumes() -> None:
    # What the paused block leaves alive counts towards the collector's first generation:
    # the answer's containers (assessments, scores, reasons) are freed inside the block, so
    # the collection that follows walks about one object per audit row, not ten.
    items = [assessment(subject_ref=f"s{i}") for i in range(500)]
    raw = body(*items)
    model = FakeModel()
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            collections.append(gc.get_count()[0])

    gc.collect()
    gc.callbacks.append(count)
    try:
        score_batch(raw, assessment_batch_model(1000), model, CLIENT, "r1")  # type: ignore[arg-type]
        gc.collect(0)  # whatever is pending is walked now
    finally:
        gc.callbacks.remove(count)
    assert collections and max(collections) < 2 * len(items)


def test_a_large_and_a_small_body_are_answered_and_audited_alike(
    settings: Settings, cohort_assessments: list[dict[str, Any]]
) -> None:
    # The columnar way (a large body) and pydantic's instances (a small one): the same bytes.
    model = load_model(settings)
    request_model = assessment_batch_model(1_000)
    raw = body(*cohort_assessments)
    assert len(raw) >= _COLUMNAR_BYTES
    head = {"model_name": model.name, "model_version": model.version, "request_id": "r1"}
    many = _answer_many(raw, request_model, model.scorer, head)
    assert many == _answer_few(raw, request_model, model.scorer, head)
    (content, bands), entry = score_batch(raw, request_model, model, CLIENT, "r1")
    assert (content, bands, list(entry.records)) == many
