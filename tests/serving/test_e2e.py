"""End to end: the service in a real uvicorn process on loopback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx

from serving.commands import create_key
from tests.serving.conftest import Store, assessment, make_settings
from tests.serving.live import LiveService


def test_scores_through_a_real_uvicorn_process(trained_store: Store, tmp_path: Path) -> None:
    settings = make_settings(trained_store, tmp_path)
    key = create_key("e2e", "score", settings=settings)
    log_path = tmp_path / "service.log"
    with LiveService(settings, log_path) as live:
        live.start()
        response = httpx.post(
            f"{live.url}/v1/risk-scores",
            json={"assessments": [assessment(subject_ref="e2e-subject")]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["model_version"] == "1" and body["scores"][0]["subject_ref"] == "e2e-subject"
        assert httpx.post(f"{live.url}/v1/risk-scores", json={}).status_code == 401
        live.stop()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    requests = [
        line
        for line in lines
        if line.get("logger") == logging.getLogger("desist").getChild("serving.requests").name
    ]
    scored = next(line for line in requests if line["request_id"] == body["request_id"])
    assert scored["client"] == "e2e" and scored["status"] == 200
    assert scored["route"] == "/v1/risk-scores"
    log_text = log_path.read_text()
    assert key not in log_text and "e2e-subject" not in log_text
