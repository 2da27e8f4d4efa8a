"""Faults, fast variants: a killed server, an audit database that goes away, a registry that
cannot be read or a model that cannot be trusted, a broken reload under load, a tracking
store lost in the middle of training. ``benchmarks/bench_faults.py`` runs the long ones.
"""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import event

from benchmarks.support import live
from benchmarks.support.assessments import assessment
from benchmarks.support.configs import small_config
from benchmarks.support.oversight_load import oversight_check, oversight_sender, serve_pool
from benchmarks.support.registry import MODEL, Store
from data.errors import DesistError
from models.contract.tags import RUN_REGISTERED_VERSION, TAG_DIGEST
from models.risk import ScorecardSettings
from pipeline.tracking import Tracker
from pipeline.train_risk import train
from serving.commands import create_key, export_audit
from tests.support.serving import (
    Service,
    audit_rows,
    audited_subject_refs,
    make_settings,
    start_service,
)


def in_process_sender(
    service: Service,
) -> Callable[[list[dict[str, Any]]], tuple[int, dict[str, Any]]]:
    def send(batch: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        response = service.score(batch)
        return response.status_code, response.json()

    return send


def test_kill_9_under_load_loses_no_answered_score_and_leaves_no_partial_request(
    trained_store: Store, tmp_path: Path
) -> None:
    settings = make_settings(trained_store, tmp_path)
    key = create_key("load", "score", settings=settings)
    with live.LiveService(settings, tmp_path / "service.log") as service:
        service.start()
        with live.Load(live.http_sender(service.url, key)) as load:
            load.wait_for(200, 20)
            service.kill(signal.SIGKILL)  # mid-request: some are being scored, some committed
            answered_before = load.scored_request_ids()
            service.start()
            load.wait_for(200, 10)
        answered = load.scored_request_ids()
    groups = live.audit_groups(settings)
    # Every score that got a 200 is in the audit log, all of its rows.
    assert all(groups[request_id] == live.BATCH for request_id in answered)
    # No partial request: a request's rows are all there or none are.
    assert set(groups.values()) == {live.BATCH}
    # At most the requests in flight at the kill were committed without an answer.
    assert len(groups) - len(answered) <= load.threads
    assert load.statuses().keys() == {200} and load.transport_errors > 0
    assert len(answered) > len(answered_before) >= 20


def test_kill_9_under_decision_and_outcome_load_loses_nothing_answered(
    trained_store: Store, tmp_path: Path
) -> None:
    settings = make_settings(trained_store, tmp_path)
    score_key = create_key("case-system", "score", settings=settings)
    feed_key = create_key("records-office", "outcomes", settings=settings)
    with live.LiveService(settings, tmp_path / "service.log") as service:
        service.start()
        pool = serve_pool(service.url, score_key)
        with live.Load(oversight_sender(service.url, score_key, feed_key, pool)) as load:
            load.wait_for(201, 20)
            service.kill(signal.SIGKILL)  # mid-request: some decisions or imports being committed
            answered_before = load.count(201)
            service.start()
            load.wait_for(201, 10)
    figures = oversight_check(settings, load)
    # Every decision answered 201 is recorded as answered (same revision), every import
    # answered has all its rows, no import is partial, revisions have no gap.
    assert figures["nothing_lost"], figures
    assert figures["partial_imports"] == 0 and figures["revisions_contiguous"]
    # At most the requests in flight at the kill were committed without an answer.
    unanswered = figures["decisions_recorded_without_answer"]
    assert unanswered + figures["imports_recorded_without_answer"] <= load.threads
    assert load.statuses().keys() == {201} and load.transport_errors > 0
    assert figures["decisions_answered_201"] > 0 and figures["imports_answered_201"] > 0
    assert load.count(201) > answered_before >= 20


@pytest.fixture
def immutable_files() -> Iterator[list[Path]]:
    """Files a test makes read-only (chattr +i: even root cannot write); released after."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed: cannot make a file read-only for root")
    paths: list[Path] = []
    try:
        yield paths
    finally:
        live.set_immutable(paths, False)


def score_until(service: Service, status: int, seconds: float = 20) -> list[int]:
    """Score until an answer has ``status``; return every status seen."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(service.score([assessment()]).status_code)
        if seen[-1] == status:
            return seen
        time.sleep(0.05)
    pytest.fail(f"no {status} within {seconds} s: {Counter(seen)}")


def test_sqlite_read_only_answers_503_records_nothing_and_recovers(
    trained_store: Store, tmp_path: Path, immutable_files: list[Path]
) -> None:
    settings = make_settings(trained_store, tmp_path)
    database = Path(settings.resolved_database_url().removeprefix("sqlite:///"))
    for service in start_service(settings):
        assert service.score([assessment()]).status_code == 200
        immutable_files += [database, database.with_name(database.name + "-wal")]
        # A failed attempt to make the file read-only would leave the test meaningless.
        try:
            live.set_immutable(immutable_files, True)
        except subprocess.CalledProcessError:
            pytest.skip("chattr +i refused (needs root and a file system that supports it)")
        refusals = [service.score([assessment(subject_ref="unrecorded")]) for _ in range(5)]
        assert {r.status_code for r in refusals} == {503}
        assert {r.json()["error"] for r in refusals} == {"audit_unavailable"}
        assert all("scores" not in r.json() for r in refusals)
        assert service.client.get("/healthz").status_code == 200
        live.set_immutable(immutable_files, False)
        seen = score_until(service, 200)
        assert set(seen) <= {200, 503}
    assert audit_rows(settings) == 2  # the two answered 200; none of the refused


def test_sqlite_read_only_at_start_recovers_without_a_restart(
    trained_store: Store, tmp_path: Path, immutable_files: list[Path]
) -> None:
    settings = make_settings(trained_store, tmp_path)
    database = Path(settings.resolved_database_url().removeprefix("sqlite:///"))
    immutable_files.append(database)
    # Start on a read-only file: the pool's first connections open read-only for good.
    for service in start_service(settings, lambda: live.set_immutable(immutable_files, True)):
        assert service.score([assessment()]).status_code == 503
        live.set_immutable(immutable_files, False)
        score_until(service, 200)
    assert audit_rows(settings) == 1


@dataclass(frozen=True)
class ProxiedService:
    """A started service whose PostgreSQL audit database is reached through a proxy to cut."""

    proxy: live.TcpProxy
    service: Service
    database_url: str  # the database itself, not through the proxy


@pytest.fixture
def proxied(
    trained_store: Store, tmp_path: Path, postgres_database: str
) -> Iterator[ProxiedService]:
    """The service on PostgreSQL through a :class:`live.TcpProxy`, having scored ``before`` once."""
    with live.TcpProxy(5432) as proxy:
        url = postgres_database.replace(":5432/", f":{proxy.port}/")
        for service in start_service(make_settings(trained_store, tmp_path, database_url=url)):
            # The link works before the fault: what follows is the fault's doing.
            assert service.score([assessment(subject_ref="before")]).status_code == 200
            yield ProxiedService(proxy, service, postgres_database)


@pytest.mark.postgres
def test_postgresql_unreachable_answers_503_and_recovers(proxied: ProxiedService) -> None:
    proxied.proxy.cut()
    started = time.monotonic()
    refusals = [proxied.service.score([assessment(subject_ref="lost")]) for _ in range(3)]
    assert time.monotonic() - started < 10  # fails fast, no hang
    assert {r.status_code for r in refusals} == {503}
    assert all("scores" not in r.json() for r in refusals)
    proxied.proxy.restore()
    score_until(proxied.service, 200)
    refs = audited_subject_refs(proxied.database_url)
    assert "lost" not in refs and len(refs) == 2


def _refusal_within(service: Service, seconds: float, subject_ref: str) -> Any:
    started = time.monotonic()
    answer = service.score([assessment(subject_ref=subject_ref)])
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"answered after {elapsed:.2f} s"
    return answer


@pytest.mark.postgres
def test_a_frozen_postgresql_answers_503_within_2_s_and_recovers(proxied: ProxiedService) -> None:
    proxied.proxy.freeze()  # connections stay open, nothing answers (a SIGSTOPped proxy)
    refusals = [_refusal_within(proxied.service, 2.0, "frozen") for _ in range(4)]
    assert {r.status_code for r in refusals} == {503}
    assert {r.json()["error"] for r in refusals} <= {"audit_unavailable"}
    assert all(r.headers["retry-after"] == "1" for r in refusals)
    proxied.proxy.thaw()
    score_until(proxied.service, 200, seconds=15)  # by itself: no restart, no admin call
    # Answered 503 before COMMIT was sent: nothing recorded.
    assert "frozen" not in audited_subject_refs(proxied.database_url)


@pytest.mark.postgres
def test_a_commit_whose_outcome_is_lost_is_answered_as_unknown_and_marked_in_the_export(
    proxied: ProxiedService, trained_store: Store, tmp_path: Path
) -> None:
    service, proxy = proxied.service, proxied.proxy
    engine = service.client.app.state.scoring.audit.engine  # type: ignore[attr-defined]
    lose_next_reply = [True]

    def on_commit(_conn: Any, lose: list[bool] = lose_next_reply) -> None:
        # COMMIT reaches the server, which commits; its reply never comes back.
        if lose and lose.pop():
            proxy.freeze(replies_only=True)

    event.listen(engine, "commit", on_commit)
    lost = _refusal_within(service, 2.0, "outcome-lost")
    assert lost.status_code == 503
    assert lost.json()["error"] == "audit_outcome_unknown"
    proxy.thaw()
    score_until(service, 200, seconds=15)
    assert service.score([assessment(subject_ref="after")]).status_code == 200
    out = tmp_path / "audit.csv"
    direct = make_settings(trained_store, tmp_path, database_url=proxied.database_url)
    export_audit(None, out, settings=direct)
    answered = {row["subject_ref"]: row["answered"] for row in csv.DictReader(out.open())}
    # The row exists (the server did commit) and says its answer was not a score.
    assert answered["outcome-lost"] == "false"
    assert answered["before"] == answered["after"] == "true"


@pytest.mark.postgres
def test_postgresql_down_at_start_then_back(
    trained_store: Store, tmp_path: Path, postgres_database: str
) -> None:
    with live.TcpProxy(5432) as proxy:
        url = postgres_database.replace(":5432/", f":{proxy.port}/")
        settings = make_settings(trained_store, tmp_path, database_url=url)
        # Keys are created while the link is up; the app starts after the cut.
        for service in start_service(settings, proxy.cut):
            assert service.client.get("/healthz").status_code == 200
            answer = service.score([assessment()])
            assert answer.status_code == 503
            assert answer.json()["error"] in ("database_unavailable", "audit_unavailable")
            proxy.restore()
            score_until(service, 200)


# --- the registry and the model at start ---


def test_registry_unreachable_at_start_is_not_ready_with_a_reason(
    trained_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    unreachable = f"http://127.0.0.1:{live.free_port()}"
    for service in start_service(make_settings(trained_store, tmp_path, tracking_uri=unreachable)):
        ready = service.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"] == (
            "no risk model loaded: the last model load failed (see the service log)"
        )
        assert service.score([assessment()]).status_code == 503
        holder = service.client.app.state.holder  # type: ignore[attr-defined]
        assert "cannot resolve models:/desist-risk@champion" in holder.last_error
        assert holder.current is None


@pytest.mark.parametrize("damage", ["flip-a-byte", "truncate", "add-a-file", "remove-a-file"])
def test_a_corrupted_champion_is_never_served(store: Store, tmp_path: Path, damage: str) -> None:
    files = store.copy_champion_files(tmp_path / "corrupted")
    model = files / "model.skops"
    if damage == "flip-a-byte":
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
    elif damage == "truncate":
        model.write_bytes(model.read_bytes()[:-100])
    elif damage == "add-a-file":
        (files / "extra.py").write_text("print('hello')\n")
    else:
        (files / "input_example.json").unlink()
    store.set_champion(store.add_version_from(files))
    for service in start_service(make_settings(store, tmp_path)):
        ready = service.client.get("/readyz")
        assert ready.status_code == 503
        assert (
            ready.json()["detail"] == "no risk model loaded: the model failed its integrity check"
        )
        assert service.score([assessment()]).status_code == 503


def test_a_truncated_model_with_a_matching_digest_fails_to_load_cleanly(
    store: Store, tmp_path: Path
) -> None:
    files = store.copy_champion_files(tmp_path / "broken")
    (files / "model.skops").write_bytes(b"PK\x03\x04 not really a zip")
    store.set_champion(store.add_version_from(files, retag=True))
    for service in start_service(make_settings(store, tmp_path)):
        assert service.client.get("/readyz").status_code == 503
        holder = service.client.app.state.holder  # type: ignore[attr-defined]
        assert "cannot deserialise" in holder.last_error


# --- a broken reload under load ---


@pytest.mark.parametrize("how", ["admin-reload", "alias-poll"])
def test_a_broken_reload_under_load_fails_no_request(
    store: Store, tmp_path: Path, how: str
) -> None:
    settings = make_settings(store, tmp_path, poll_seconds=0.2 if how == "alias-poll" else 0)
    for service in start_service(settings):
        with live.Load(in_process_sender(service), threads=3) as load:
            load.wait_for(200, 15)
            broken = store.add_version(**{TAG_DIGEST: "sha256:" + "0" * 64})
            store.set_champion(broken)
            if how == "admin-reload":
                reload = service.client.post(
                    "/admin/reload", headers=service.headers(service.admin_key)
                )
                assert reload.status_code == 503
                assert "still serving version 1" in reload.json()["detail"]
            else:
                time.sleep(1.0)  # five polls, each failing to load the broken version
            load.wait_for(200, 15)
        assert load.statuses() == Counter({200: len(load.answers)})
        assert {body["model_version"] for _, body in load.answers} == {"1"}
        assert service.client.get("/readyz").json()["version"] == "1"
    assert audit_rows(settings) == live.BATCH * len(load.answers)


# --- training while the tracking store goes away ---


def test_training_against_an_unreachable_tracking_server_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from pipeline.cli import main

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{live.free_port()}")
    config = Path(__file__).resolve().parents[2] / "configs" / "synthetic.toml"
    started = time.monotonic()
    assert main(["train", "risk", "--config", str(config)]) == 2
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert "tracking store" in err and "127.0.0.1" in err
    assert "Traceback" not in err


@pytest.mark.postgres
def test_tracking_store_lost_mid_training_registers_nothing(
    tmp_path: Path, postgres_database: str
) -> None:
    with live.TcpProxy(5432) as proxy:
        uri = postgres_database.replace("postgresql://", "postgresql+psycopg://").replace(
            ":5432/", f":{proxy.port}/"
        )
        tracker = Tracker(tracking_uri=uri, artifact_root=(tmp_path / "artifacts").as_uri())

        def cut_once_training_started(message: str) -> None:
            if message.startswith("Split"):  # the run exists, its data are logged
                proxy.cut()

        with pytest.raises(DesistError, match="tracking store"):
            train(
                small_config(models=(ScorecardSettings(),)),
                tracker=tracker,
                progress=cut_once_training_started,
            )
        proxy.restore()
    direct = uri.replace(f":{proxy.port}/", ":5432/")
    client = MlflowClient(tracking_uri=direct, registry_uri=direct)
    assert client.search_model_versions(f"name='{MODEL}'") == []
    runs = client.search_runs([Tracker(tracking_uri=direct).experiment_id("desist-risk")])
    assert runs and {run.data.tags.get(RUN_REGISTERED_VERSION) for run in runs} == {None}
