"""The domain step of a batch request: validate, answer, build the audit entry.

Runs in the scoring worker's thread (:class:`~serving.worker.ScoringWorker`),
which commits the entry before the answer is released: nothing leaves
unaudited. Knows nothing of HTTP: a route reads the raw body, hands it here
and sends back the bytes returned.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from serving.audit import AuditEntry, AuditRecord, RecommendationRecord, input_digest
from serving.errors import InvalidRequestError
from serving.keys import Client
from serving.recommender import audit_summary
from serving.registry_loader import LoadedModel, LoadedPathwayModel

#: An answer's body and its labels for the metrics (bands, or top programmes).
Answer = tuple[bytes, list[str]]


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """Validate a raw JSON body against ``model`` in one pass.

    Straight from bytes with pydantic-core's parser: FastAPI's own body
    handling decodes the JSON to Python objects first and validates them
    after, which doubled the cost of a 1,000-assessment batch.

    Raises
    ------
    InvalidRequestError
        With every problem found, answered with 422 (or 413 for an oversized batch).
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        # The inputs let a range or category violation name the value sent (only those use it).
        raise InvalidRequestError(err.errors(include_url=False)) from err


def score_batch(
    raw: bytes,
    request_model: type[BaseModel],
    model: LoadedModel,
    client: Client,
    request_id: str,
) -> tuple[Answer, AuditEntry]:
    """Validate, score and serialise; return the answer with the audit rows it must commit first.

    The scoring worker commits the rows (with those of other requests waiting) before
    the answer is released: nothing leaves unaudited.
    """
    assessments = parse_body(raw, request_model).assessments
    scores = model.scorer.score(assessments)
    records = [
        AuditRecord(
            subject_ref=score["subject_ref"],
            input_digest=input_digest(item),
            risk_probability=score["risk_probability"],
            risk_band=score["risk_band"],
        )
        for item, score in zip(assessments, scores, strict=True)
    ]
    # Built from plain values already checked by the scorer: the shape is RiskScoreResponse's.
    content, entry = _answered("scores", scores, records, model, client, request_id)
    return (content, [score["risk_band"] for score in scores]), entry


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
        RecommendationRecord(
            subject_ref=answer["subject_ref"],
            input_digest=input_digest(item),
            recommended=audit_summary(answer),
        )
        for item, answer in zip(assessments, answers, strict=True)
    ]
    content, entry = _answered("recommendations", answers, records, model, client, request_id)
    tops = [a["recommended"][0]["programme"] if a["recommended"] else "none" for a in answers]
    return (content, tops), entry


def _answered(
    kind: Literal["scores", "recommendations"],
    answers: list[Any],
    records: list[Any],
    model: LoadedModel | LoadedPathwayModel,
    client: Client,
    request_id: str,
) -> tuple[bytes, AuditEntry]:
    """Return a batch's response body (its answers under ``kind``) and its audit entry."""
    entry = AuditEntry(
        kind,
        client=client.name,
        request_id=request_id,
        model_name=model.name,
        model_version=model.version,
        records=records,
    )
    content = to_json(
        {
            "model_name": model.name,
            "model_version": model.version,
            "request_id": request_id,
            kind: answers,
        }
    )
    return content, entry
