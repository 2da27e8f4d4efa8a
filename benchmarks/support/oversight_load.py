"""Decisions and outcomes under load, and what a kill -9 left of them.

:func:`oversight_sender` is a :class:`~benchmarks.support.live.Load` sender
that, instead of scoring, alternates a practitioner's decision on one of a
few served scores (so revisions pile up on each) and an outcomes import of
``BATCH`` rows. :func:`oversight_check` then compares what was answered 201
with what the database holds: the same checks as for score rows.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import select

from benchmarks.support.assessments import assessment
from benchmarks.support.live import BATCH, Load, Sender
from serving.database import decision_audit_table, make_engine, outcome_audit_table
from serving.settings import Settings

#: Served scores the decisions are spread over (each collects many revisions).
POOL = 5


def serve_pool(url: str, score_key: str) -> list[tuple[str, str]]:
    """Score ``POOL`` people; return (request id, subject_ref) of each score."""
    batch = [assessment(subject_ref=f"decided-{i}") for i in range(POOL)]
    answer = httpx.post(
        f"{url}/v1/risk-scores",
        json={"assessments": batch},
        headers={"Authorization": f"Bearer {score_key}"},
        timeout=30,
    )
    answer.raise_for_status()
    body = answer.json()
    return [(body["request_id"], s["subject_ref"]) for s in body["scores"]]


def oversight_sender(
    url: str, score_key: str, outcomes_key: str, pool: list[tuple[str, str]]
) -> Sender:
    """Return a sender alternating a decision and an outcomes import of ``BATCH`` rows.

    Answers are returned with the body, plus ``kind`` (decision or outcomes).
    """
    local = threading.local()
    counter = itertools.count()

    def send(batch: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=10)
        n = next(counter)
        if n % 2 == 0:
            request_id, subject = pool[(n // 2) % len(pool)]
            response = local.client.post(
                "/v1/decisions",
                json={
                    "request_id": request_id,
                    "subject_ref": subject,
                    "decision": "overridden" if n % 4 == 0 else "accepted",
                    **({"override_action": "no_programme", "reason": "load"} if n % 4 == 0 else {}),
                    "practitioner_ref": "po-load",
                },
                headers={"Authorization": f"Bearer {score_key}"},
            )
            kind = "decision"
        else:
            rows = [
                {
                    "subject_ref": a["subject_ref"],
                    "outcome_date": None,
                    "follow_up_end": "2030-01-01",
                }
                for a in batch
            ]
            response = local.client.post(
                "/v1/outcomes",
                json={"outcomes": rows},
                headers={"Authorization": f"Bearer {outcomes_key}"},
            )
            kind = "outcomes"
        return response.status_code, {**response.json(), "kind": kind}

    return send


def oversight_check(settings: Settings, load: Load) -> dict[str, Any]:
    """Compare the decisions and imports answered 201 with the rows the database holds."""
    engine = make_engine(settings.resolved_database_url())
    with engine.connect() as conn:
        decisions = conn.execute(
            select(
                decision_audit_table.c.decision_request_id,
                decision_audit_table.c.request_id,
                decision_audit_table.c.subject_ref,
                decision_audit_table.c.revision,
            )
        ).all()
        imports = Counter(conn.execute(select(outcome_audit_table.c.request_id)).scalars().all())
    engine.dispose()
    answers = [body for code, body in list(load.answers) if code == 201]
    decided = {
        (b["decision_request_id"], b["request_id"], b["subject_ref"], b["revision"])
        for b in answers
        if b["kind"] == "decision"
    }
    imported = [b["request_id"] for b in answers if b["kind"] == "outcomes"]
    stored = {tuple(row) for row in decisions}
    revisions: dict[tuple[str, str], list[int]] = {}
    for _, request_id, subject, revision in decisions:
        revisions.setdefault((request_id, subject), []).append(revision)
    contiguous = all(sorted(r) == list(range(1, len(r) + 1)) for r in revisions.values())
    return {
        "decisions_answered_201": len(decided),
        "decisions_answered_and_recorded": len(decided & stored),
        "decisions_recorded_without_answer": len(stored - decided),
        "revisions_contiguous": contiguous,
        "imports_answered_201": len(imported),
        "imports_answered_with_all_rows": sum(imports[r] == BATCH for r in imported),
        "imports_in_log": len(imports),
        "partial_imports": sum(n != BATCH for n in imports.values()),
        "imports_recorded_without_answer": len(set(imports) - set(imported)),
        "nothing_lost": decided <= stored
        and all(imports[r] == BATCH for r in imported)
        and all(n == BATCH for n in imports.values())
        and contiguous,
    }
