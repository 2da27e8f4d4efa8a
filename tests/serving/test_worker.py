"""The scoring worker: requests waiting together share one audit commit, answered only after it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from serving.audit import AuditEntry, AuditLog, AuditRecord
from serving.database import audit_table, make_engine
from serving.errors import AuditWriteError, RequestDeadlineError
from serving.worker import ScoringWorker


def entry(request_id: str, rows: int = 2) -> AuditEntry:
    records = [AuditRecord(f"{request_id}-{i}", "sha256:0", 0.5, "medium") for i in range(rows)]
    return AuditEntry("scores", "c", request_id, "desist-risk", "1", records)


class Recording(AuditLog):
    """An audit log that remembers the request ids of each commit it was asked for."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.groups: list[list[str]] = []

    def record_all(self, entries: Sequence[AuditEntry], **options: Any) -> None:
        self.groups.append([e.request_id for e in entries])
        super().record_all(entries, **options)


def rows_of(log: AuditLog, request_id: str) -> int:
    with log.engine.connect() as conn:
        found = conn.execute(select(audit_table).where(audit_table.c.request_id == request_id))
        return len(found.all())


class Holder:
    """A first request that holds the worker's thread until released: the next ones queue up."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._started = threading.Event()

    def _build(self) -> tuple[str, AuditEntry]:
        self._started.set()
        self.release.wait(10)
        return "held", entry("held")

    async def hold(self, worker: ScoringWorker) -> asyncio.Future[str]:
        """Submit the held request; return its answer-to-be once the worker is busy with it."""
        first = asyncio.ensure_future(worker.submit(self._build))
        while not self._started.is_set():
            await asyncio.sleep(0.001)
        return first


def run_group(worker: ScoringWorker, ids: list[str], fail: set[str] | None = None) -> list[object]:
    """Submit ``ids`` while the worker is held by a first request, so that they queue up.

    Returns each request's outcome (answer or exception), in order, with the first one's last.
    """

    def build(request_id: str) -> tuple[str, AuditEntry]:
        if fail and request_id in fail:
            raise ValueError(f"invalid request {request_id}")
        return f"answer {request_id}", entry(request_id)

    async def main() -> list[object]:
        holder = Holder()
        first = await holder.hold(worker)
        rest = [asyncio.ensure_future(worker.submit(lambda r=r: build(r))) for r in ids]
        await asyncio.sleep(0.05)  # every request queued behind the held one
        assert not any(f.done() for f in rest)
        holder.release.set()
        return list(await asyncio.gather(*rest, first, return_exceptions=True))

    return asyncio.run(main())


def test_requests_waiting_together_share_one_commit_and_are_answered_after_it(
    tmp_path: Path,
) -> None:
    log = Recording(make_engine(f"sqlite:///{tmp_path / 'a.db'}"))
    worker = ScoringWorker(log)
    answered_with_rows: dict[str, int] = {}
    ids = [f"r{i}" for i in range(5)]

    async def ask(request_id: str) -> str:
        answer = await worker.submit(lambda: (f"answer {request_id}", entry(request_id)))
        # The answer is released only once its rows are committed.
        answered_with_rows[request_id] = rows_of(log, request_id)
        return answer

    async def main() -> list[str]:
        holder = Holder()
        first = await holder.hold(worker)
        rest = [asyncio.ensure_future(ask(r)) for r in ids]
        await asyncio.sleep(0.05)
        holder.release.set()
        return [await first, *await asyncio.gather(*rest)]

    answers = asyncio.run(main())
    worker.close()
    assert answers == ["held", *(f"answer {r}" for r in ids)]
    assert log.groups == [["held"], ids]  # the five queued requests: one transaction
    assert answered_with_rows == {r: 2 for r in ids}


def test_a_failed_group_commit_fails_every_request_of_it_and_records_none(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    log = Recording(engine)
    worker = ScoringWorker(log)
    real = log.record_all

    def failing(entries: Sequence[AuditEntry], **options: Any) -> None:
        if "r0" in [e.request_id for e in entries]:
            # The commit itself fails, after the first rows went in: nothing may remain.
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "CREATE TRIGGER no_r4 BEFORE INSERT ON audit_scores "
                        "WHEN NEW.request_id = 'r4' BEGIN SELECT RAISE(ABORT, 'x'); END"
                    )
                )
        real(entries, **options)

    log.record_all = failing  # type: ignore[method-assign]
    outcomes = run_group(worker, [f"r{i}" for i in range(5)])
    worker.close()
    *group, first = outcomes
    assert first == "held"
    assert all(isinstance(o, AuditWriteError) for o in group)
    assert len({id(o) for o in group}) == 5  # one error object per request
    assert all(rows_of(log, f"r{i}") == 0 for i in range(5))
    assert log.groups == [["held"], [f"r{i}" for i in range(5)]]


def test_a_request_that_fails_to_build_fails_alone(tmp_path: Path) -> None:
    log = Recording(make_engine(f"sqlite:///{tmp_path / 'a.db'}"))
    worker = ScoringWorker(log)
    outcomes = run_group(worker, ["a", "bad", "c"], fail={"bad"})
    worker.close()
    assert outcomes[0] == "answer a" and outcomes[2] == "answer c"
    assert isinstance(outcomes[1], ValueError)
    assert log.groups == [["held"], ["a", "c"]]
    assert rows_of(log, "bad") == 0 and rows_of(log, "a") == rows_of(log, "c") == 2


def test_groups_are_bounded(tmp_path: Path) -> None:
    log = Recording(make_engine(f"sqlite:///{tmp_path / 'a.db'}"))
    worker = ScoringWorker(log, max_group=2)
    outcomes = run_group(worker, ["a", "b", "c", "d", "e"])
    worker.close()
    assert outcomes == ["answer a", "answer b", "answer c", "answer d", "answer e", "held"]
    assert log.groups == [["held"], ["a", "b"], ["c", "d"], ["e"]]


def test_close_finishes_what_is_queued() -> None:
    done: list[int] = []

    class Log:
        def record_all(self, entries: Sequence[AuditEntry], **options: Any) -> None:
            done.extend(range(len(entries)))

    worker = ScoringWorker(Log())  # type: ignore[arg-type]

    async def main() -> list[str]:
        return list(
            await asyncio.gather(*(worker.submit(lambda: ("ok", entry("x"))) for _ in range(20)))
        )

    assert asyncio.run(main()) == ["ok"] * 20
    worker.close()
    assert len(done) == 20
    with pytest.raises(ValueError):
        ScoringWorker(Log(), threads=0)  # type: ignore[arg-type]


def test_a_request_past_its_deadline_is_503_at_once_and_never_recorded(tmp_path: Path) -> None:
    log = Recording(make_engine(f"sqlite:///{tmp_path / 'a.db'}"))
    worker = ScoringWorker(log, request_deadline=0.3)
    release = threading.Event()

    def slow() -> tuple[str, AuditEntry]:
        release.wait(10)  # a long scoring, holding the only thread
        return "slow", entry("slow")

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcomes = await asyncio.gather(
            worker.submit(slow),
            worker.submit(lambda: ("queued", entry("queued"))),
            return_exceptions=True,
        )
        elapsed = loop.time() - started
        release.set()
        assert elapsed < 1.0, elapsed  # answered at the deadline, not when the thread frees
        return list(outcomes)

    outcomes = asyncio.run(main())
    worker.close()
    assert all(isinstance(o, RequestDeadlineError) for o in outcomes)
    assert rows_of(log, "slow") == rows_of(log, "queued") == 0
    assert log.groups == []  # nothing was committed for either
