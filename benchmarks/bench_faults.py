"""Faults, long variants: each against a live service under load, with figures.

The fast variants are tests (``tests/serving/test_faults.py``); here each
fault lasts seconds rather than a blink, under four client threads sending
batches of three on loopback, and what happened is counted:

- ``kill9_sqlite`` / ``kill9_postgres``: SIGKILL every ``--kill-every``
  seconds, restart at once, for ``--seconds``; then every answered request's
  rows, partial requests, rows committed without an answer;
- ``kill9_oversight_sqlite`` / ``kill9_oversight_postgres``: the same under a
  load of practitioners' decisions (revisions piling up on five scores) and
  outcomes imports of three rows; every decision answered 201 recorded with
  the revision answered, revisions without gaps, imports whole;
- ``sqlite_read_only`` / ``postgres_cut``: the audit database read-only
  (chattr +i) or cut (a TCP proxy; the shared PostgreSQL keeps running) for
  ``--outage`` seconds mid-load; answers by status in each phase, seconds to
  the first 200 after the database is back, audit rows against 200s;
- ``broken_reload``: under load, the alias moved to a version whose digest is
  wrong, reloaded by the admin endpoint and by the alias poll; failed
  requests, versions that answered; then a good version goes live;
- ``registry_unreachable`` / ``corrupted_champion``: a service started
  against an unreachable registry or a champion with a flipped byte;
  readiness and the reason given;
- ``tracking_lost_mid_training``: a training job whose PostgreSQL tracking
  store is cut just before it registers; the error and what got registered.

PostgreSQL scenarios need the server at 127.0.0.1:5432 (they are reported
as skipped otherwise). Run as root for ``chattr``.

Run: ``.venv/bin/python -m benchmarks.bench_faults [--home DIR]``; about four
minutes. Results in ``benchmarks/results/faults.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
from mlflow.tracking import MlflowClient

from benchmarks.bench_load import champion_home, service_settings
from benchmarks.bench_serving import MODEL
from benchmarks.common import save
from benchmarks.support.configs import small_config
from benchmarks.support.live import (
    BATCH,
    LiveService,
    Load,
    TcpProxy,
    audit_groups,
    free_port,
    http_sender,
    set_immutable,
)
from benchmarks.support.oversight_load import oversight_check, oversight_sender, serve_pool
from benchmarks.support.registry import Store
from data.errors import DesistError
from models.contract.tags import TAG_DIGEST
from models.risk import ScorecardSettings
from pipeline.tracking import Tracker
from pipeline.train_risk import train
from serving.commands import create_key
from serving.settings import Settings

POSTGRES = "postgresql://postgres@127.0.0.1:5432"


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A throwaway database (``None`` when PostgreSQL is not reachable), dropped after."""
    name = f"desist_faults_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        yield None
        return
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def audit_check(settings: Settings, load: Load) -> dict[str, Any]:
    groups = audit_groups(settings)
    answered = load.scored_request_ids()
    return {
        "answered_200": len(answered),
        "answered_with_all_rows": sum(groups[r] == BATCH for r in answered),
        "requests_in_log": len(groups),
        "partial_requests": sum(n != BATCH for n in groups.values()),
        "committed_without_answer": len(set(groups) - set(answered)),
        "nothing_lost": all(groups[r] == BATCH for r in answered)
        and all(n == BATCH for n in groups.values()),
    }


def kill_and_restart(live: LiveService, seconds: float, every: float) -> list[float]:
    """SIGKILL ``live`` every ``every`` s for ``seconds``, restarting it at once.

    Returns the seconds each restart took.
    """
    restarts = []
    end = time.monotonic() + seconds
    while time.monotonic() + every < end:
        time.sleep(every)
        live.kill()
        started = time.monotonic()
        live.start()
        restarts.append(round(time.monotonic() - started, 2))
    return restarts


def kill9_figures(restarts: list[float], load: Load, check: dict[str, Any]) -> dict[str, Any]:
    """The figures of a kill -9 scenario: the kills, the answers, and ``check`` on what was kept."""
    return {
        "kills": len(restarts),
        "restart_seconds": restarts,
        "statuses": dict(load.statuses()),
        "transport_errors_while_down": load.transport_errors,
        **check,
    }


def kill9(home: Path, scratch: Path, seconds: float, every: float, url: str | None) -> Any:
    settings = service_settings(home, scratch, **({"database_url": url} if url else {}))
    key = create_key("load", "score", settings=settings)
    with LiveService(settings, scratch / "kill9.log") as live:
        live.start()
        with Load(http_sender(live.url, key)) as load:
            restarts = kill_and_restart(live, seconds, every)
            load.wait_for(200, 20)
    return kill9_figures(restarts, load, audit_check(settings, load))


def kill9_oversight(
    home: Path, scratch: Path, seconds: float, every: float, url: str | None
) -> Any:
    settings = service_settings(home, scratch, **({"database_url": url} if url else {}))
    score_key = create_key("case-system", "score", settings=settings)
    feed_key = create_key("records-office", "outcomes", settings=settings)
    with LiveService(settings, scratch / "kill9.log") as live:
        live.start()
        pool = serve_pool(live.url, score_key)
        with Load(oversight_sender(live.url, score_key, feed_key, pool)) as load:
            restarts = kill_and_restart(live, seconds, every)
            load.wait_for(201, 20)
    return kill9_figures(restarts, load, oversight_check(settings, load))


def outage(
    settings: Settings,
    key: str,
    log: Path,
    cut: Callable[[], None],
    restore: Callable[[], None],
    seconds: float,
) -> Any:
    phases: dict[str, Any] = {}
    with LiveService(settings, log) as live:
        live.start()
        with Load(http_sender(live.url, key)) as load:
            time.sleep(seconds / 2)
            phases["before"] = dict(load.statuses())
            cut()
            time.sleep(seconds)
            during = load.statuses()
            phases["during"] = dict(during - Counter(phases["before"]))
            restore()
            restored = time.monotonic()
            load.wait_for(200, 1, timeout=60)
            recovery = time.monotonic() - restored
            time.sleep(seconds / 2)
            phases["after"] = dict(load.statuses() - during)
    return {
        "outage_seconds": seconds,
        "answers_by_phase": phases,
        "recovery_seconds": round(recovery, 2),
        "statuses": dict(load.statuses()),
        "non_503_errors": sum(n for s, n in load.statuses().items() if s not in (200, 503)),
        **audit_check(settings, load),
    }


def broken_reload(home: Path, scratch: Path, seconds: float) -> Any:
    store = Store(scratch / "registry")
    store.home.mkdir()
    shutil.copy2(home / "mlflow.db", store.home / "mlflow.db")
    champion = store.client().get_model_version_by_alias(MODEL, "champion").version
    settings = service_settings(home, scratch, tracking_uri=store.tracking_uri, poll_seconds=1.0)
    key = create_key("load", "score", settings=settings)
    admin = create_key("ops", "admin", settings=settings)
    with LiveService(settings, scratch / "reload.log") as live:
        live.start()
        with Load(http_sender(live.url, key)) as load:
            time.sleep(seconds / 4)
            broken = store.add_version(**{TAG_DIGEST: "sha256:" + "0" * 64})
            store.set_champion(broken)
            reload = httpx.post(
                f"{live.url}/admin/reload", headers={"Authorization": f"Bearer {admin}"}
            )
            time.sleep(seconds / 2)  # the poll tries and fails once a second meanwhile
            during = load.statuses()
            good = store.add_version()
            store.set_champion(good)
            time.sleep(seconds / 4)
    versions = Counter(body.get("model_version") for _, body in load.answers)
    return {
        "champion_before": str(champion),
        "broken_version": broken,
        "admin_reload_status": reload.status_code,
        "admin_reload_detail": reload.json()["detail"][:160],
        "statuses_while_broken": dict(during),
        "statuses": dict(load.statuses()),
        "failed_requests": sum(n for s, n in load.statuses().items() if s != 200),
        "answers_by_version": dict(versions),
        "broken_version_served": versions.get(broken, 0),
        "good_version_loaded_by_poll": versions.get(good, 0) > 0,
    }


def not_ready(settings: Settings, log: Path, extra_env: dict[str, str] | None = None) -> Any:
    with LiveService(settings, log, extra_env=extra_env) as live:
        live.start(ready=False)
        time.sleep(2)
        ready = httpx.get(f"{live.url}/readyz")
        scored = httpx.post(f"{live.url}/v1/risk-scores", json={"assessments": []})
    return {
        "readyz_status": ready.status_code,
        "readyz_detail": ready.json()["detail"],
        "unauthenticated_score_status": scored.status_code,
        "log_reason": next(
            (line[:300] for line in log.read_text().splitlines() if "model load failed" in line),
            None,
        ),
    }


def corrupted(home: Path, scratch: Path) -> Any:
    store = Store(scratch / "corrupt-registry")
    store.home.mkdir()
    shutil.copy2(home / "mlflow.db", store.home / "mlflow.db")
    champion = store.client().get_model_version_by_alias(MODEL, "champion").version
    location = store.client().get_model_version_download_uri(MODEL, champion)
    files = scratch / "corrupted-files"
    shutil.copytree(Path(location.removeprefix("file://")), files)
    model = files / "model.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    client = store.client()
    tags = dict(client.get_model_version(MODEL, champion).tags)
    created = client.create_model_version(MODEL, source=files.as_uri(), tags=tags)
    store.set_champion(str(created.version))
    settings = service_settings(home, scratch, tracking_uri=store.tracking_uri)
    return not_ready(settings, scratch / "corrupted.log")


def tracking_lost(scratch: Path) -> Any:
    with postgres_database() as url:
        if url is None:
            return {"skipped": "PostgreSQL not reachable"}
        with TcpProxy(5432) as proxy:
            uri = url.replace("postgresql://", "postgresql+psycopg://")
            via = uri.replace(":5432/", f":{proxy.port}/")
            tracker = Tracker(tracking_uri=via, artifact_root=(scratch / "runs").as_uri())
            steps: list[str] = []

            def cut_before_registering(message: str) -> None:
                steps.append(message)
                if message.startswith("Selected"):
                    proxy.cut()

            started = time.monotonic()
            try:
                train(
                    small_config(models=(ScorecardSettings(),)),
                    tracker=tracker,
                    progress=cut_before_registering,
                )
                error = None
            except DesistError as err:
                error = str(err)
            seconds = time.monotonic() - started
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return {
            "cut_after_step": steps[-1][:80] if steps else None,
            "seconds_to_fail": round(seconds, 1),
            "error": error,
            "registered_versions": len(client.search_model_versions("name='desist-risk'")),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, help="DESIST_HOME with a champion to reuse")
    parser.add_argument(
        "--only", help="run only the scenarios whose name starts with this (e.g. kill9_oversight)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="kill -9 scenario length")
    parser.add_argument("--kill-every", type=float, default=8.0)
    parser.add_argument("--outage", type=float, default=10.0, help="database outage length")
    args = parser.parse_args()

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    scratch = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    home = champion_home(args.home, scratch)
    results: dict[str, Any] = {}

    def run(name: str, scenario: Callable[[Path], Any]) -> None:
        if args.only and not name.startswith(args.only):
            return
        folder = scratch / name
        folder.mkdir()
        started = time.monotonic()
        results[name] = {**scenario(folder), "scenario_seconds": 0.0}
        results[name]["scenario_seconds"] = round(time.monotonic() - started, 1)
        print(name, results[name], flush=True)

    run("kill9_sqlite", lambda d: kill9(home, d, args.seconds, args.kill_every, None))
    with postgres_database() as url:
        if url is None:
            results["kill9_postgres"] = {"skipped": "PostgreSQL not reachable"}
        else:
            run("kill9_postgres", lambda d: kill9(home, d, args.seconds, args.kill_every, url))
    run(
        "kill9_oversight_sqlite",
        lambda d: kill9_oversight(home, d, args.seconds, args.kill_every, None),
    )
    with postgres_database() as url:
        if url is None:
            results["kill9_oversight_postgres"] = {"skipped": "PostgreSQL not reachable"}
        else:
            run(
                "kill9_oversight_postgres",
                lambda d: kill9_oversight(home, d, args.seconds, args.kill_every, url),
            )

    def read_only(folder: Path) -> Any:
        settings = service_settings(home, folder)
        key = create_key("load", "score", settings=settings)
        database = folder / "audit.db"
        files = [database, database.with_name("audit.db-wal")]
        try:
            return outage(
                settings,
                key,
                folder / "service.log",
                lambda: set_immutable(files, True),
                lambda: set_immutable(files, False),
                args.outage,
            )
        finally:
            set_immutable(files, False)

    run("sqlite_read_only", read_only)

    with postgres_database() as url:
        if url is None:
            results["postgres_cut"] = {"skipped": "PostgreSQL not reachable"}
        else:

            def cut(folder: Path) -> Any:
                with TcpProxy(5432) as proxy:
                    via = url.replace(":5432/", f":{proxy.port}/")
                    settings = service_settings(home, folder, database_url=via)
                    key = create_key("load", "score", settings=settings)
                    return outage(
                        settings, key, folder / "service.log", proxy.cut, proxy.restore, args.outage
                    )

            run("postgres_cut", cut)

    run("broken_reload", lambda d: broken_reload(home, d, 20.0))
    run(
        "registry_unreachable",
        lambda d: not_ready(
            service_settings(home, d, tracking_uri=f"http://127.0.0.1:{free_port()}"),
            d / "service.log",
            {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"},
        ),
    )
    run("corrupted_champion", lambda d: corrupted(home, d))
    run("tracking_lost_mid_training", tracking_lost)
    shutil.rmtree(scratch, ignore_errors=True)
    if args.only:
        results = {name: value for name, value in results.items() if name.startswith(args.only)}
    name = f"faults_{args.only}" if args.only else "faults"
    save(name, {"load_average_at_start": load_at_start, "scenarios": results})


if __name__ == "__main__":
    main()
