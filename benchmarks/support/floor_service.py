"""The plainest audited batch-scoring service: the floor a 1,000-assessment request stands on.

A reference for :mod:`benchmarks.bench_serving`, run beside desist in the same
run on the same machine: one FastAPI route on the same server (uvicorn, one
worker, uvloop and httptools), the same registered model loaded once, the
same request body and thread budget. It does only what no audited scoring service can skip:
read the body, parse the JSON, make the feature frame, ``predict_proba``,
insert one row per score into SQLite (write-ahead log, ``synchronous=NORMAL``,
as desist's audit) and commit before answering, then answer each subject's
probability as JSON. No validation, bands, reasons, digests, key check,
request ids, metrics or deadlines. What desist costs above it is the price
of those.

Run by the benchmark: ``python -m benchmarks.support.floor_service --port P
--tracking URI --database FILE``.
"""

from __future__ import annotations

import argparse
import sqlite3
from datetime import UTC, datetime
from typing import Any

import mlflow.sklearn
import pandas as pd
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from mlflow.tracking import MlflowClient
from pydantic_core import from_json, to_json

from data.schema import ID_FIELD
from models.contract.tags import TAG_FEATURES
from models.threads import choose_threads, thread_limit

MODEL = "desist-risk"


def make_app(tracking: str, database: str) -> FastAPI:
    """Return the floor service for the champion of ``tracking``, auditing into ``database``."""
    client = MlflowClient(tracking, tracking)
    version = client.get_model_version_by_alias(MODEL, "champion")
    features: list[str] = from_json(version.tags[TAG_FEATURES])
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    model: Any = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
    audit = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    audit.execute("PRAGMA journal_mode=WAL")
    audit.execute("PRAGMA synchronous=NORMAL")
    audit.execute(
        "CREATE TABLE IF NOT EXISTS scores (id INTEGER PRIMARY KEY, time TEXT, "
        "subject_ref TEXT, model_version TEXT, risk_probability REAL)"
    )
    threads = choose_threads().threads  # as desist's service chooses its budget
    app = FastAPI()

    def score(raw: bytes) -> bytes:
        items = from_json(raw)["assessments"]
        frame = pd.DataFrame(items, columns=[ID_FIELD, *features])
        with thread_limit(threads):
            probabilities = model.predict_proba(frame[features])[:, 1].tolist()
        refs = frame[ID_FIELD].tolist()
        now = datetime.now(UTC).isoformat()
        audit.execute("BEGIN")
        audit.executemany(
            "INSERT INTO scores (time, subject_ref, model_version, risk_probability) "
            "VALUES (?, ?, ?, ?)",
            [(now, ref, version.version, p) for ref, p in zip(refs, probabilities, strict=True)],
        )
        audit.execute("COMMIT")
        return to_json(
            {
                "scores": [
                    {ID_FIELD: ref, "risk_probability": p}
                    for ref, p in zip(refs, probabilities, strict=True)
                ]
            }
        )

    @app.post("/v1/risk-scores")
    async def risk_scores(request: Request) -> Response:
        # Scored on the event loop: one request at a time, as the benchmark sends them.
        return Response(score(await request.body()), media_type="application/json")

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tracking", required=True, help="MLflow store with the champion")
    parser.add_argument("--database", required=True, help="SQLite file for the audit rows")
    args = parser.parse_args()
    app = make_app(args.tracking, args.database)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
