"""The scoring worker: validates, scores and audits requests off the event loop.

Requests are queued to a small set of threads (``DESIST_SCORING_THREADS``,
default one). A thread takes the first request waiting and every other one
waiting behind it (up to ``max_group``), builds each answer, then commits the
audit rows of all of them in one transaction (group commit) and hands the
answers back to the event loop in one call. Each answer still leaves only
after its rows are committed: if the commit fails, every request of the
group fails with :class:`~serving.errors.AuditWriteError` (503) and none of its
rows exists.

Why: with one commit and one cross-thread wake-up per request, a backlog
(after any pause of the process) drained no faster than requests arrived at
70 % of the peak rate, and the pause grew into tens of milliseconds of queue.
Grouped, the cost per request falls as the queue grows, so it empties
quickly. Under light load a group is one request, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from serving.audit import AuditEntry, AuditLog
from serving.errors import AuditWriteError

T = TypeVar("T")

#: A request's work: build its answer and the audit rows it must commit before leaving.
Build = Callable[[], tuple[T, AuditEntry]]


@dataclass(slots=True)
class _Job(Generic[T]):
    build: Build[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


class ScoringWorker:
    """Threads that build answers and commit their audit rows in groups.

    Parameters
    ----------
    audit
        Where the rows go.
    threads
        Worker threads. The work holds the GIL and SQLite takes one writer
        at a time: more than one only adds switching (``DESIST_SCORING_THREADS``).
    max_group
        Most requests committed in one transaction.
    """

    def __init__(self, audit: AuditLog, threads: int = 1, max_group: int = 64) -> None:
        if threads < 1 or max_group < 1:
            raise ValueError("threads and max_group must be at least 1")
        self.audit = audit
        self.max_group = max_group
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"desist-scoring-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def submit(self, build: Build[T]) -> T:
        """Return ``build``'s answer once its audit rows are committed.

        Raises
        ------
        AuditWriteError
            If the rows could not be committed (then none of them exists).
        Exception
            Whatever ``build`` raised (a validation error: nothing is recorded).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(build, future, loop))
        return await future

    def close(self) -> None:
        """Finish every request queued (their commits included), then stop the threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group: list[_Job[Any]] = [first]
            stop = False
            while len(group) < self.max_group:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                group.append(job)
            self._serve(group)
            if stop:
                return

    def _serve(self, group: Sequence[_Job[Any]]) -> None:
        """Build each answer, commit all their rows at once, hand the outcomes back."""
        outcomes: list[tuple[_Job[Any], Any, BaseException | None]] = []
        built: list[tuple[_Job[Any], Any, AuditEntry]] = []
        for job in group:
            try:
                answer, entry = job.build()
            except Exception as err:  # this request's own failure (422, 500): not the group's
                outcomes.append((job, None, err))
            else:
                built.append((job, answer, entry))
        if built:
            try:
                self.audit.record_all([entry for _, _, entry in built])
            except AuditWriteError as err:
                outcomes += [(job, None, _copy(err, AuditWriteError)) for job, _, _ in built]
            except Exception as err:
                outcomes += [(job, None, _copy(err, RuntimeError)) for job, _, _ in built]
            else:
                outcomes += [(job, answer, None) for job, answer, _ in built]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job[Any], Any, BaseException | None]]]
        by_loop = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, settled in by_loop.items():
            # One wake-up of the event loop for the whole group.
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, settled)


def _copy(error: Exception, kind: type[Exception]) -> Exception:
    """Return a new ``kind`` error for one request of a failed group, caused like ``error``.

    One object per request: an exception raised in several tasks at once would collect
    all their tracebacks.
    """
    if isinstance(error, AuditWriteError):
        copy = kind(str(error))
        copy.__cause__ = error.__cause__
    else:
        copy = kind("the audit commit failed unexpectedly")
        copy.__cause__ = error
    return copy


def _settle(outcomes: Sequence[tuple[_Job[Any], Any, BaseException | None]]) -> None:
    for job, answer, error in outcomes:
        if job.future.done():  # the request was cancelled (client gone)
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(answer)
