"""What the service opens when it starts and closes when it stops.

The database (API keys, audit log), the scoring worker, the model holders and
their first load, the alias poller, the SQLite WAL checkpoints, and whether
FastAPI's OpenTelemetry support is on (:mod:`serving.telemetry`). A model
that fails to load leaves the app running and ``/readyz`` answering 503 with
the reason; a database that is away leaves scoring answering 503 until it is
back.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from threadpoolctl import threadpool_limits

from models.contract.errors import ModelLoadError
from models.threads import choose_threads
from serving.audit import AuditLog
from serving.database import checkpoint_wal, is_sqlite, make_engine, prepare_tables
from serving.keys import KeyStore
from serving.logs import get_logger
from serving.registry_loader import ModelHolder, champion_version, load_model, load_pathway_model
from serving.settings import Settings
from serving.telemetry import native_telemetry_settled
from serving.worker import ScoringWorker

log = get_logger("serving")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def make_lifespan(settings: Settings) -> Lifespan:
    """Return the lifespan of an app serving with ``settings``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before any model loads: every prediction of this worker runs within the budget.
        budget = choose_threads(settings.threads)
        threads = threadpool_limits(limits=budget.threads)
        log.info("thread budget", extra={"threads": budget.threads, "reason": budget.reason})
        engine = make_engine(
            settings.resolved_database_url(),
            connect_timeout=settings.database_connect_timeout,
            statement_timeout=settings.database_statement_timeout,
            pool_timeout=settings.database_pool_timeout,
            create_tables=False,
            background_checkpoints=True,
        )
        # The service starts even while its database is away; scoring answers 503 until it is back.
        tables_retry = await prepare_tables(engine)
        app.state.scoring = ScoringWorker(
            AuditLog(engine),
            threads=settings.scoring_threads,
            request_deadline=settings.request_deadline_seconds,
            audit_deadline=settings.audit_deadline_seconds,
        )
        app.state.keys = KeyStore(engine)
        # Every load and reload scores within this budget: chosen once, as the pools are limited
        # (choosing again watches the cores for a moment, and would count this service's own load).
        loading = settings.model_copy(update={"threads": budget.threads})
        holder = ModelHolder(loading, load_model, settings.model_name, "risk")
        pathway_holder = ModelHolder(
            loading, load_pathway_model, settings.pathway_model_name, "pathway"
        )
        app.state.holder = holder
        app.state.pathway_holder = pathway_holder
        for each in (holder, pathway_holder):
            with contextlib.suppress(ModelLoadError):
                await run_in_threadpool(each.reload)
        # The model and the libraries are long-lived: moving them out of the
        # garbage collector's view keeps full collections (tens of ms with a
        # loaded model) out of request latency.
        gc.collect()
        gc.freeze()
        # The event loop and the scoring thread share the GIL, and each request hands it
        # over several times (every SQLite call and most numpy ones release it). With
        # CPython's 5 ms switch interval a thread asking for it back could wait 5 ms per
        # hand-over whenever the other was busy: a 0.7 ms request took 3-7 ms, a queue
        # formed and fed itself (bursts of 50-250 ms at 70 % of the peak rate).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
        poller = (
            asyncio.create_task(_poll_aliases((holder, pathway_holder), settings.poll_seconds))
            if settings.poll_seconds > 0
            else None
        )
        checkpoints = (
            asyncio.create_task(_checkpoint_wal_every(engine, 1.0)) if is_sqlite(engine) else None
        )
        try:
            # After FastAPI's own start-up configuration of OpenTelemetry (serving.telemetry).
            with native_telemetry_settled(app):
                yield
        finally:
            for task in (poller, tables_retry, checkpoints):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            # Requests in flight finish their audit commit before the engine goes.
            await run_in_threadpool(app.state.scoring.close)
            engine.dispose()
            sys.setswitchinterval(switch_interval)
            threads.restore_original_limits()

    return lifespan


async def _checkpoint_wal_every(engine: Engine, seconds: float) -> None:
    """Checkpoint the SQLite audit log off the request path (see ``make_engine``)."""
    while True:
        await asyncio.sleep(seconds)
        await run_in_threadpool(checkpoint_wal, engine)


async def _poll_aliases(holders: tuple[ModelHolder[Any], ...], seconds: float) -> None:
    """Reload a model when its alias moves to another version; errors keep the served model."""
    while True:
        await asyncio.sleep(seconds)
        for holder in holders:
            try:
                version = await run_in_threadpool(champion_version, holder.settings, holder.name)
                current = holder.current
                if current is None or current.version != version:
                    await run_in_threadpool(holder.reload)
            except ModelLoadError:
                pass  # already logged and kept for /readyz
            except Exception:
                log.exception("alias poll failed")
