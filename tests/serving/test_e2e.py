"""End to end: the service in a real uvicorn process on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from serving.commands import create_key
from tests.serving.conftest import Store, assessment, make_settings

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_scores_through_a_real_uvicorn_process(trained_store: Store, tmp_path: Path) -> None:
    settings = make_settings(trained_store, tmp_path)
    key = create_key("e2e", "score", settings=settings)
    port = free_port()
    env = {
        **os.environ,
        "DESIST_HOME": str(settings.home),
        "DESIST_TRACKING_URI": settings.resolved_tracking_uri(),
        "DESIST_DATABASE_URL": settings.resolved_database_url(),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    stderr = (tmp_path / "service.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from serving.commands import serve; serve('127.0.0.1', {port}, 1)",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "service.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "service not ready within 60 s"
            time.sleep(0.2)
        response = httpx.post(
            f"{base}/v1/risk-scores",
            json={"assessments": [assessment(subject_ref="e2e-subject")]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["model_version"] == "1" and body["scores"][0]["subject_ref"] == "e2e-subject"
        assert httpx.post(f"{base}/v1/risk-scores", json={}).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=30)
        stderr.close()
    lines = [json.loads(line) for line in (tmp_path / "service.log").read_text().splitlines()]
    requests = [line for line in lines if line.get("logger") == "desist.serving.requests"]
    scored = next(line for line in requests if line["request_id"] == body["request_id"])
    assert scored["client"] == "e2e" and scored["status"] == 200
    assert scored["route"] == "/v1/risk-scores"
    log_text = (tmp_path / "service.log").read_text()
    assert key not in log_text and "e2e-subject" not in log_text
