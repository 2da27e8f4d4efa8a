"""The domain step of ``POST /v1/pathway-allocations``: validate, allocate, answer, audit entry.

The cohort is estimated once by the served pathway model and allocated by
:func:`models.allocation.allocate_estimates`, the rule of
:func:`models.allocation.allocate_cohort` (``desist allocate``): the
confidence rule's pairs first (confident personal picks and the default
programme), then the places left to the next best positive estimates, always
eligible and inside the evidence. The service adds no rule of its own.

Like :mod:`serving.scoring` it knows nothing of HTTP and runs in the scoring
worker, which commits the audit entry (one row per person of the cohort, placed
or not, and one for the allocation: its places, fills and shares) before the
answer is released: an allocation answered is recorded, and one
whose rows could not be committed is not answered (503 ``audit_unavailable``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel
from pydantic_core import to_json

from data.schema import PROGRAMMES
from models.allocation import allocate_estimates, allocation_shares
from models.pathway_policy import person_figures
from serving.allocation_schemas import NOT_RECORDED, SHARE_ATTRIBUTES
from serving.audit import (
    ALLOCATED,
    NOT_PLACED,
    AllocationRecord,
    AuditEntry,
    RecommendationRecord,
    input_digests,
)
from serving.keys import Client
from serving.registry_loader import LoadedPathwayModel
from serving.scoring import parse_body


def allocate_batch(
    raw: bytes,
    request_model: type[BaseModel],
    model: LoadedPathwayModel,
    client: Client,
    request_id: str,
) -> tuple[bytes, AuditEntry]:
    """Validate a cohort and its places, allocate them; return the answer and its audit rows.

    Raises
    ------
    InvalidRequestError
        If an assessment or the places break the schema (422, naming the field;
        413 for a cohort over the limit).
    """
    body = parse_body(raw, request_model)
    assessments = body.assessments
    places = np.array([getattr(body.places, p) for p in PROGRAMMES], dtype=np.int64)
    pathway_model = model.recommender.model
    table = model.recommender.frame(assessments)
    estimates, risk_without = pathway_model.estimate_with_risk(table)
    allocation = allocate_estimates(pathway_model, estimates, places)
    risk_with = person_figures(estimates, risk_without).risk_with
    people: list[dict[str, Any]] = []
    records: list[RecommendationRecord] = []
    for row, (item, digest) in enumerate(zip(assessments, input_digests(assessments), strict=True)):
        j = int(allocation.programme[row])
        placed = j >= 0
        reduction = float(estimates.effect[row, j]) if placed else 0.0
        people.append(
            {
                "subject_ref": item.subject_ref,
                "programme": PROGRAMMES[j] if placed else None,
                "expected_reduction": reduction,
                "risk_without": float(risk_without[row]),
                "risk_with": float(risk_with[row, j]) if placed else float(risk_without[row]),
                "recommended_with_confidence": placed and bool(estimates.recommended[row, j]),
            }
        )
        # Everyone considered is recorded, placed or not: a decision on either can name its row.
        summary = f"{ALLOCATED}{PROGRAMMES[j]}:{reduction:.4f}" if placed else NOT_PLACED
        records.append(RecommendationRecord(item.subject_ref, digest, summary))
    served = {"model_name": model.name, "model_version": model.version, "request_id": request_id}
    filled = [
        {"programme": p, "places": int(n), "filled": int(f)}
        for p, n, f in zip(PROGRAMMES, places, allocation.filled, strict=True)
    ]
    by_group = shares(allocation.programme, assessments)
    record = AllocationRecord(
        len(assessments), to_json(filled).decode(), allocation.total, to_json(by_group).decode()
    )
    entry = AuditEntry(
        "allocations",
        client.name,
        request_id,
        model.name,
        model.version,
        records,
        allocation=record,
    )
    content = to_json(
        {
            **served,
            "allocations": people,
            "total_expected_reduction": allocation.total,
            "places": filled,
            "shares": by_group,
        }
    )
    return content, entry


def shares(programme: np.ndarray, assessments: Sequence[BaseModel]) -> dict[str, Any]:
    """Return the allocation's shares by each of :data:`SHARE_ATTRIBUTES` (audit-only fields).

    Read from the request's assessments, never from the model's inputs: the
    model does not see them.
    """
    return {
        attribute: allocation_shares(
            programme,
            np.array(
                [getattr(item, attribute) or NOT_RECORDED for item in assessments], dtype=object
            ),
        )
        for attribute in SHARE_ATTRIBUTES
    }
