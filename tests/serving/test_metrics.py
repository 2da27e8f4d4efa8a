"""Prometheus metrics: a scrape sums every worker's figures; drift gauges from the monitor."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serving.metrics import (
    MULTIPROCESS_ENV,
    DriftSnapshotError,
    Metrics,
    fresh_multiprocess_dir,
    read_drift_snapshot,
    write_drift_snapshot,
)
from serving.settings import Settings
from tests.support.serving import Service, start_service

REPO = Path(__file__).resolve().parents[2]
WORKER = """
from serving.metrics import Metrics
metrics = Metrics()
for _ in range({n}):
    metrics.observe_request("POST", "/v1/risk-scores", 200, 0.004)
metrics.count_scores("7", ["low"] * {n})
"""


def sample(text: str, prefix: str) -> float:
    """The value of the one line starting with ``prefix``."""
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


def test_one_scrape_reports_the_sum_of_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, **fresh_multiprocess_dir(tmp_path / "metrics"), "PYTHONPATH": str(REPO)}
    for n in (3, 5):  # two worker processes, as uvicorn --workers 2 starts them
        code = WORKER.format(n=n)
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    monkeypatch.setenv(MULTIPROCESS_ENV, env[MULTIPROCESS_ENV])
    text = Metrics().render()  # a third process answers the scrape
    requests = 'desist_requests_total{method="POST",route="/v1/risk-scores",status="200"}'
    assert sample(text, requests) == 8
    assert sample(text, 'desist_scores_total{band="low",model_version="7"}') == 8
    assert sample(text, 'desist_request_duration_seconds_count{route="/v1/risk-scores"}') == 8
    assert "pid=" not in text


def test_a_fresh_multiprocess_dir_forgets_the_last_run(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"old figures")
    assert fresh_multiprocess_dir(folder) == {MULTIPROCESS_ENV: str(folder)}
    assert list(folder.iterdir()) == []


def test_the_snapshot_keeps_the_latest_run_of_each_version(tmp_path: Path) -> None:
    path = tmp_path / "monitoring" / "latest.json"
    write_drift_snapshot(path, model="desist-risk", version="3", alert=False, psi={"age": 0.01})
    write_drift_snapshot(path, model="desist-risk", version="4", alert=False, psi={"age": 0.02})
    write_drift_snapshot(
        path, model="desist-risk", version="3", alert=True, psi={"age": 0.4}, run_id="r9"
    )
    results = {
        (r.version, r.alert, r.psi["age"], r.run_id) for r in read_drift_snapshot(path).results
    }
    assert results == {("3", True, 0.4, "r9"), ("4", False, 0.02, None)}
    assert [p.name for p in path.parent.iterdir()] == ["latest.json"]  # no temporary left


def test_a_bad_snapshot_is_named_and_a_bad_entry_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    path.write_text('{"format": 1, "results": [{"model": "m", "version": "1"}]}')
    with pytest.raises(DriftSnapshotError, match=r"latest.json: results.0.alert: Field required"):
        read_drift_snapshot(path)
    before = path.read_text()
    with pytest.raises(DriftSnapshotError):
        write_drift_snapshot(path, model="", version="1", alert=False, psi={})
    assert path.read_text() == before


def test_drift_gauges_come_from_the_snapshot_at_scrape_time(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    metrics = Metrics()
    assert "desist_drift_snapshot_ok 0.0" in metrics.render(path)  # the monitor has not run
    at = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    psi = {"age": 0.31, "score": 0.05}
    write_drift_snapshot(
        path, model="desist-risk", version="3", alert=True, psi=psi, monitored_at=at
    )
    text = metrics.render(path)
    assert sample(text, 'desist_drift_psi{feature="age",model="desist-risk",version="3"}') == 0.31
    assert sample(text, 'desist_drift_psi{feature="score",model="desist-risk",version="3"}') == 0.05
    assert sample(text, 'desist_drift_alert{model="desist-risk",version="3"}') == 1
    stamp = 'desist_monitoring_timestamp_seconds{model="desist-risk",version="3"}'
    assert sample(text, stamp) == at.timestamp()
    assert sample(text, "desist_drift_snapshot_ok") == 1
    path.write_text("{not json")
    broken = metrics.render(path)  # the scrape survives; the gauge says the file is bad
    assert sample(broken, "desist_drift_snapshot_ok") == 0
    assert "desist_drift_psi{" not in broken and "desist_requests_total" in broken
    assert "desist_drift" not in metrics.render(None)  # no snapshot configured: no gauges


def test_the_service_scrape_carries_the_drift_gauges(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "monitoring.json"
    write_drift_snapshot(path, model="desist-risk", version="1", alert=False, psi={"age": 0.02})
    configured = settings.model_copy(update={"monitoring_snapshot": path})
    service: Service
    for service in start_service(configured):
        text = service.client.get("/metrics", headers=service.headers()).text
        assert sample(text, 'desist_drift_alert{model="desist-risk",version="1"}') == 0
        assert (
            sample(text, 'desist_drift_psi{feature="age",model="desist-risk",version="1"}') == 0.02
        )


def test_scores_are_counted_by_band() -> None:
    metrics = Metrics()
    metrics.count_scores("7", ["low", "very high", "low", "low"])
    metrics.count_scores("7", ["low"])
    text = metrics.render()
    assert sample(text, 'desist_scores_total{band="low",model_version="7"}') == 4
    assert sample(text, 'desist_scores_total{band="very high",model_version="7"}') == 1


def test_repeated_series_keep_counting_each_apart() -> None:
    metrics = Metrics()
    for status in (200, 200, 401, 200):
        metrics.observe_request("POST", "/v1/risk-scores", status, 0.002)
    metrics.observe_request("GET", "/v1/models", 200, 0.2)
    metrics.count_scores("7", ["low"])
    metrics.count_scores("7", ["low", "high", "low"])
    metrics.count_scores("8", ["low"])
    metrics.count_scores("7", [])
    metrics.count_recommendations("7", ["none", "ets", "none"])
    text = metrics.render()
    requests = 'desist_requests_total{method="POST",route="/v1/risk-scores",status="%s"}'
    assert sample(text, requests % 200) == 3 and sample(text, requests % 401) == 1
    assert sample(text, 'desist_requests_total{method="GET",route="/v1/models",status="200"}') == 1
    assert sample(text, 'desist_request_duration_seconds_count{route="/v1/risk-scores"}') == 4
    assert (
        sample(text, 'desist_request_duration_seconds_bucket{le="0.0025",route="/v1/risk-scores"}')
        == 4
    )
    assert sample(text, 'desist_request_duration_seconds_count{route="/v1/models"}') == 1
    assert sample(text, 'desist_scores_total{band="low",model_version="7"}') == 3
    assert sample(text, 'desist_scores_total{band="high",model_version="7"}') == 1
    assert sample(text, 'desist_scores_total{band="low",model_version="8"}') == 1
    assert sample(text, 'desist_recommendations_total{model_version="7",programme="none"}') == 2
    assert sample(text, 'desist_recommendations_total{model_version="7",programme="ets"}') == 1
