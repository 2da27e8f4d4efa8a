"""The domain step of a batch request: validate, answer, build the audit entry.

Runs in the scoring worker's thread (:class:`~serving.worker.ScoringWorker`),
which commits the entry before the answer is released: nothing leaves
unaudited. Knows nothing of HTTP: a route reads the raw body, hands it here
and sends back the bytes returned.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json, to_json

from data.schema import ID_FIELD
from serving.audit import (
    AuditEntry,
    AuditRecord,
    RecommendationRecord,
    input_digests,
    row_digests,
)
from serving.columnar import CheckedBatch, ColumnarCheck
from serving.errors import InvalidRequestError
from serving.keys import Client
from serving.recommender import audit_summary
from serving.registry_loader import LoadedModel, LoadedPathwayModel
from serving.score_json import scores_body
from serving.scorer import Scorer, scores_from_picks

#: An answer's body and its labels for the metrics (bands, or top programmes).
Answer = tuple[bytes, list[str]]


#: Bodies from this size on (about eight assessments) are answered from their columns
#: (:func:`_answer_many`); smaller ones through pydantic's instances, cheaper for a few.
_COLUMNAR_BYTES = 4_096

#: Bodies larger than this are screened for unknown fields before validation.
_SCREEN_BYTES = 65_536


def parse_body(raw: bytes, model: type[BaseModel], max_problems: int = 100) -> Any:
    """Validate a raw JSON body against ``model``, parsing the JSON once.

    The bytes are parsed by pydantic-core's JSON parser into Python objects
    once, and those are validated. FastAPI's own body handling did the same
    in two steps of its own, which doubled the cost of a 1,000-assessment
    batch; and since the batch model checks its size before its items
    (:func:`serving.schemas.assessment_batch_model`), pydantic validates the
    items as Python objects even from JSON: parsing them once here, for the
    screen below and for validation, gives the same values and the same
    errors, without the second parse ``model_validate_json`` did after the
    screen's. A body that is not a JSON object is validated from its bytes,
    as before, so that its errors are worded the same.

    At most ``max_problems`` problems are described. pydantic-core holds the GIL
    while it validates and while it lists errors, which stalls the event loop
    (and ``/healthz``) meanwhile: a batch of 1,000 assessments with 100 unknown
    fields each took 0.15 s to validate and 0.29 s to list its 100,000 errors
    here. So a large body with more unknown fields than that is refused before
    validation (:func:`_screen`), and when validation finds more problems than
    that, only the first assessments are validated again, one at a time, to
    describe them.

    A valid body (the usual case) is first validated straight from its bytes
    (:func:`_validate_directly`), which skips the parse into Python objects;
    any other body then goes the way described above, so its errors are the
    same.

    Raises
    ------
    InvalidRequestError
        With the problems found (the first ``max_problems``) and their count,
        answered with 422 (or 413 for an oversized batch).
    """
    direct = _validate_directly(raw, model)
    if direct is not None:
        return direct
    try:
        body = from_json(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _validate_json(raw, model)  # not JSON, or not an object: its errors as ever
    items = body.get("assessments")
    if len(raw) > _SCREEN_BYTES:
        _screen(items, model, max_problems)
    try:
        return model.model_validate(body)
    except ValidationError as err:
        total = err.error_count()
        if total <= max_problems:
            # Validated from Python objects, a wrong type is worded "a valid list" rather
            # than "a valid array": the few problems are listed as JSON validation words them.
            return _validate_json(raw, model)
        raise InvalidRequestError(_first_problems(items, model, max_problems), total) from err


def _validate_directly(raw: bytes, model: type[BaseModel]) -> Any:
    """Return ``raw`` validated as ``model`` straight from its bytes; ``None`` unless valid.

    Through the model's direct variant (:func:`serving.schemas.assessment_batch_model`).
    Unknown fields are kept aside (``extra="allow"``), not listed as errors, and
    validation stops at the first invalid assessment: a hostile body costs about
    one parse here, however many problems it has, before the screen and the
    validation of :func:`parse_body` describe them. The assessments are
    instances of the same model, equal to those that path would give.
    """
    direct: type[BaseModel] | None = getattr(model, "direct_model", None)
    if direct is None:
        return None
    try:
        batch = direct.model_validate_json(raw, extra="allow")
    except ValidationError:
        return None
    items = batch.assessments  # type: ignore[attr-defined]
    if batch.__pydantic_extra__ or any(item.__pydantic_extra__ for item in items):
        return None  # unknown fields: refused, in the words of the path that lists them
    for item in items:
        # As validated under the model's own extra="forbid": no extra fields at all.
        object.__setattr__(item, "__pydantic_extra__", None)
    return model.model_construct(assessments=items)


def _validate_json(raw: bytes, model: type[BaseModel]) -> Any:
    """Validate ``raw`` with ``model_validate_json``; list every problem it finds."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        # The inputs let a range or category violation name the value sent (only those use it).
        raise InvalidRequestError(err.errors(include_url=False)) from err


def _screen(items: Any, model: type[BaseModel], max_problems: int) -> None:
    """Refuse a body whose assessments carry more than ``max_problems`` unknown fields."""
    item_model = _item_model(model)
    if (
        not isinstance(items, list)
        or item_model is None
        or len(items) > getattr(model, "max_batch", len(items))
    ):
        return  # not a batch, or an oversized one: validation answers (413 before any item)
    allowed = set(item_model.model_fields)
    problems: list[dict[str, Any]] = []
    total = 0
    for index, item in enumerate(items):  # a Python loop: the event loop gets the GIL between
        if not isinstance(item, dict) or item.keys() <= allowed:
            continue  # nothing unknown (the usual case), checked as one set operation
        unknown = [key for key in item if key not in allowed]
        total += len(unknown)
        for key in unknown[: max(0, max_problems - len(problems))]:
            problems.append(
                {"type": "extra_forbidden", "loc": ("assessments", index, key), "msg": ""}
            )
    if total > max_problems:
        raise InvalidRequestError(problems, total)


def _first_problems(items: Any, model: type[BaseModel], max_problems: int) -> list[Any]:
    """Describe the first ``max_problems`` problems, validating assessments one at a time."""
    item_model = _item_model(model)
    problems: list[Any] = []
    if not isinstance(items, list) or item_model is None:
        return problems
    for index, item in enumerate(items):
        try:
            item_model.model_validate(item)
        except ValidationError as err:
            for problem in err.errors(include_url=False):
                problem["loc"] = ("assessments", index, *problem["loc"])
                problems.append(problem)
        if len(problems) >= max_problems:
            break
    return problems[:max_problems]


def _item_model(model: type[BaseModel]) -> type[BaseModel] | None:
    """Return the assessment model of a batch body model (its ``assessments`` items)."""
    annotation = model.model_fields["assessments"].annotation
    args = getattr(annotation, "__args__", ())
    return (
        args[0] if args and isinstance(args[0], type) and issubclass(args[0], BaseModel) else None
    )


def score_batch(
    raw: bytes,
    request_model: type[BaseModel],
    model: LoadedModel,
    client: Client,
    request_id: str,
) -> tuple[Answer, AuditEntry]:
    """Validate, score and serialise; return the answer with the audit rows it must commit first.

    The scoring worker commits the rows (with those of other requests waiting) before
    the answer is released: nothing leaves unaudited. A small body is answered through
    pydantic's instances (:func:`_answer_few`), a large one through its columns
    (:func:`_answer_many`): the same answers and rows, each the cheaper way for its size.
    """
    answer = _answer_few if len(raw) < _COLUMNAR_BYTES else _answer_many
    with _collector_paused():
        content, bands, records = answer(raw, request_model, model.scorer, _head(model, request_id))
    return (content, bands), _entry("scores", records, model, client, request_id)


def _answer_few(
    raw: bytes, request_model: type[BaseModel], scorer: Scorer, head: dict[str, str]
) -> tuple[bytes, list[str], list[AuditRecord]]:
    """Return the body, bands and audit records of a few assessments, validated by pydantic."""
    assessments = parse_body(raw, request_model).assessments
    scores = scorer.score(assessments)
    records = [
        AuditRecord(score["subject_ref"], digest, score["risk_probability"], score["risk_band"])
        for score, digest in zip(scores, input_digests(assessments), strict=True)
    ]
    # Built from plain values already checked by the scorer: the shape is RiskScoreResponse's.
    content = to_json({**head, "scores": scores})
    bands = [score["risk_band"] for score in scores]
    # Freed while the collector is still paused (see _collector_paused).
    del assessments, scores
    return content, bands, records


def _answer_many(
    raw: bytes, request_model: type[BaseModel], scorer: Scorer, head: dict[str, str]
) -> tuple[bytes, list[str], list[AuditRecord]]:
    """Return the body, bands and audit records of a batch, from its columns.

    Every value of a kind is handled in one call (:func:`checked_batch`,
    :meth:`serving.scorer.Scorer.picks`, :func:`serving.audit.row_digests`,
    :func:`serving.score_json.scores_body`), not an object per assessment.
    """
    batch = checked_batch(raw, request_model)
    picks = scorer.picks(batch)
    probabilities, bands = picks[0], picks[1]
    refs = batch.columns[ID_FIELD]
    records = list(map(AuditRecord, refs, row_digests(batch.rows), probabilities, bands))
    # The shape is RiskScoreResponse's, from plain values already checked by the scorer.
    content = scores_body(head, refs, picks, scorer.features, batch.columns)
    if content is None:
        content = to_json(
            {**head, "scores": scores_from_picks(batch.rows, scorer.features, *picks)}
        )
    # Freed while the collector is still paused (see _collector_paused).
    del batch, picks, refs, probabilities
    return content, bands, records


def checked_batch(raw: bytes, request_model: type[BaseModel]) -> CheckedBatch:
    """Return the assessments of a valid body; raise what :func:`parse_body` raises if not.

    The body is first checked column by column (:class:`serving.columnar.ColumnarCheck`,
    a third of pydantic's time for 1,000 assessments); one that check is not sure of is
    validated by :func:`parse_body`, whose values and errors are the ones the service
    has always given.
    """
    columnar: ColumnarCheck = getattr(request_model, "columnar", None) or _columnar(
        getattr(request_model, "max_batch", 1_000_000)
    )
    batch = columnar.check(raw)
    if batch is not None:
        return batch
    assessments = parse_body(raw, request_model).assessments
    return columnar.from_rows([vars(item) for item in assessments])


@functools.cache
def _columnar(max_batch: int) -> ColumnarCheck:
    return ColumnarCheck(max_batch)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while a batch is answered.

    A 1,000-assessment answer allocates some 10,000 containers (assessments,
    scores, reasons, records) that all stay alive until it is sent, and the
    collector walked them about 16 times per request, to free nothing: 1-2.7 ms
    of a request here. Their memory is freed by reference counting as before;
    any cycle made meanwhile waits for the next collection. Process-wide, so
    left alone when something else already paused it.

    What the block leaves alive is counted against the collector's first
    generation when it resumes: a block that kept the answer's 10,000
    containers alive past its end made the next allocation walk them all
    (1-2 ms, now after the block instead of during it). So a caller frees
    them inside the block (``del``) and keeps only what it returns.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def recommend_batch(
    raw: bytes,
    request_model: type[BaseModel],
    model: LoadedPathwayModel,
    client: Client,
    request_id: str,
) -> tuple[Answer, AuditEntry]:
    """Validate, recommend and serialise; return the answer with its audit rows (as scores)."""
    assessments = parse_body(raw, request_model).assessments
    answers = model.recommender.recommend(assessments)
    records = [
        RecommendationRecord(answer["subject_ref"], digest, audit_summary(answer))
        for answer, digest in zip(answers, input_digests(assessments), strict=True)
    ]
    content = to_json({**_head(model, request_id), "recommendations": answers})
    entry = _entry("recommendations", records, model, client, request_id)
    tops = [a["recommended"][0]["programme"] if a["recommended"] else "none" for a in answers]
    return (content, tops), entry


def _head(model: LoadedModel | LoadedPathwayModel, request_id: str) -> dict[str, str]:
    """Return the fields every answer body starts with, before its answers."""
    return {"model_name": model.name, "model_version": model.version, "request_id": request_id}


def _entry(
    kind: Literal["scores", "recommendations"],
    records: list[Any],
    model: LoadedModel | LoadedPathwayModel,
    client: Client,
    request_id: str,
) -> AuditEntry:
    """Return the audit entry of a batch's answers (its ``records``)."""
    return AuditEntry(
        kind,
        client=client.name,
        request_id=request_id,
        model_name=model.name,
        model_version=model.version,
        records=records,
    )
