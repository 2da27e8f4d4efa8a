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

Deadlines (issue 16): a request waits at most ``request_deadline`` for the
worker and its own scoring, and at most ``audit_deadline`` for its audit
commit (or in the queue while the commit ahead of it is stuck: a frozen
database); then it is answered 503 at once, from the event loop, whatever the
thread is doing. What the thread does after that follows the answer given:

- answered before its COMMIT was sent: its group is rolled back (none of its
  rows exists) and the other requests of the group fail with it;
- answered while its COMMIT was in flight (``audit_outcome_unknown``), or its
  COMMIT broke off: the rows may exist, so its request id is recorded as
  unanswered (in the next transaction that succeeds, and in the log at once);
  ``desist audit export`` marks those rows ``answered=false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from serving.audit import AuditEntry, AuditLog
from serving.errors import AuditOutcomeUnknownError, AuditWriteError, RequestDeadlineError
from serving.logs import get_logger

log = get_logger("serving.worker")

T = TypeVar("T")

#: A request's work: build its answer and the audit rows it must commit before leaving.
Build = Callable[[], tuple[T, AuditEntry]]

#: Most unanswered request ids kept in memory until the database records them.
_MAX_UNANSWERED = 10_000

#: How often a waiting request checks its deadlines (on the event loop).
_TICK = 0.1


class _State(enum.Enum):
    QUEUED = "queued"  # waiting, or being built
    WRITING = "writing"  # its rows are being inserted; COMMIT not sent
    COMMITTING = "committing"  # COMMIT sent
    WITHDRAWN = "withdrawn"  # answered 503 before COMMIT: must not be committed
    UNKNOWN = "unknown"  # answered 503 while COMMIT was in flight


@dataclass(slots=True)
class _Job(Generic[T]):
    build: Build[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    submitted: float = field(default_factory=time.monotonic)
    state: _State = _State.QUEUED
    #: Since when it waits on the audit database: its own inserts, or a stuck commit ahead.
    db_wait_since: float = float("inf")
    request_id: str = ""


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
    request_deadline
        Seconds a request may wait for a thread and its own scoring (see the module notes).
    audit_deadline
        Seconds a request may wait for its audit commit.
    """

    def __init__(
        self,
        audit: AuditLog,
        threads: int = 1,
        max_group: int = 64,
        request_deadline: float = 5.0,
        audit_deadline: float = 1.5,
    ) -> None:
        if threads < 1 or max_group < 1:
            raise ValueError("threads and max_group must be at least 1")
        self.audit = audit
        self.max_group = max_group
        self.request_deadline = request_deadline
        self.audit_deadline = audit_deadline
        self._lock = threading.Lock()
        self._writing_since: dict[int, float] = {}
        self._unanswered: list[tuple[str, str]] = []
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
            If the rows could not be committed in time (then none of them exists).
        AuditOutcomeUnknownError
            If the commit was sent and its outcome is not known in time.
        RequestDeadlineError
            If the request waited longer than ``request_deadline`` (nothing recorded).
        Exception
            Whatever ``build`` raised (a validation error: nothing is recorded).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job = _Job(build, future, loop)
        self._queue.put(job)
        timer = loop.call_later(_TICK, self._check, job)
        try:
            return await future
        finally:
            timer.cancel()
            with self._lock:
                if job.state is _State.QUEUED:  # cancelled (client gone): never commit it
                    job.state = _State.WITHDRAWN

    @property
    def unanswered(self) -> list[tuple[str, str]]:
        """Request ids answered with an error whose rows may exist, not yet recorded as such."""
        with self._lock:
            return list(self._unanswered)

    def _check(self, job: _Job[Any]) -> None:
        """On the event loop: answer ``job`` with 503 if it is past a deadline, else look again."""
        if job.future.done():
            return
        now = time.monotonic()
        error: Exception | None = None
        with self._lock:
            state = job.state
            stuck = [s for s in self._writing_since.values() if now - s > self.audit_deadline]
            if stuck:  # queued behind a commit that is not coming back: it waits on the database
                job.db_wait_since = min(job.db_wait_since, max(job.submitted, min(stuck)))
            late = now - job.db_wait_since > self.audit_deadline
            if state is _State.QUEUED:
                if now - job.submitted > self.request_deadline:
                    error = RequestDeadlineError(
                        f"not answered within {self.request_deadline:g} s; retry later"
                    )
                elif late:
                    error = AuditWriteError("the audit log is not answering; retry later")
                if error is not None:
                    job.state = _State.WITHDRAWN
            elif late:
                if state is _State.WRITING:
                    job.state = _State.WITHDRAWN
                    error = AuditWriteError("the audit log is not answering; retry later")
                elif state is _State.COMMITTING:
                    job.state = _State.UNKNOWN
                    error = AuditOutcomeUnknownError(
                        "the audit commit's outcome is unknown; the scores are withheld"
                    )
        if error is None:
            job.loop.call_later(_TICK, self._check, job)
            return
        log.warning("request answered at its deadline", extra={"state": state.value})
        job.future.set_exception(error)

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
            if job.state is not _State.QUEUED:  # answered at its deadline, or cancelled
                continue
            try:
                answer, entry = job.build()
            except Exception as err:  # this request's own failure (422, 500): not the group's
                outcomes.append((job, None, err))
            else:
                job.request_id = entry.request_id
                built.append((job, answer, entry))
        with self._lock:
            built = [b for b in built if b[0].state is _State.QUEUED]
            now = time.monotonic()
            for job, _, _ in built:
                job.state = _State.WRITING
                job.db_wait_since = min(job.db_wait_since, now)
            unanswered = list(self._unanswered)
        if built:
            outcomes += self._commit(built, unanswered)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job[Any], Any, BaseException | None]]]
        by_loop = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, settled in by_loop.items():
            # One wake-up of the event loop for the whole group.
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, settled)

    def _commit(
        self, built: list[tuple[_Job[Any], Any, AuditEntry]], unanswered: list[tuple[str, str]]
    ) -> list[tuple[_Job[Any], Any, BaseException | None]]:
        """Commit the rows of ``built``; return each job's outcome, recording unanswered ones."""
        jobs = [job for job, _, _ in built]

        def before_commit() -> bool:
            with self._lock:
                if any(job.state is not _State.WRITING for job in jobs):
                    return False  # one was answered 503 already: the group must not commit
                for job in jobs:
                    job.state = _State.COMMITTING
                return True

        ident = threading.get_ident()
        with self._lock:
            self._writing_since[ident] = time.monotonic()
        committed: bool | None  # None: unknown
        failure: Exception | None = None
        try:
            self.audit.record_all(
                [entry for _, _, entry in built],
                unanswered=unanswered,
                before_commit=before_commit,
            )
            committed = True
        except AuditOutcomeUnknownError as err:
            committed, failure = None, err
        except AuditWriteError as err:
            committed, failure = False, err
        except Exception as err:
            committed, failure = False, err
        with self._lock:
            del self._writing_since[ident]
            if committed:
                recorded = set(unanswered)
                self._unanswered = [u for u in self._unanswered if u not in recorded]
            reason = "outcome_unknown" if committed is None else "committed_after_503"
            newly = [
                (job.request_id, reason)
                for job in jobs
                if (job.state is _State.UNKNOWN and committed is not False)
                or (job.state is _State.COMMITTING and committed is None)
            ]
            # Bounded while the database stays away; every one is in the log too.
            self._unanswered = (self._unanswered + newly)[-_MAX_UNANSWERED:]
            for job in jobs:
                if job.state is not _State.UNKNOWN:
                    job.state = _State.WITHDRAWN  # settled below: done
        if newly:
            log.error(
                "answered with an error although the audit rows may exist",
                extra={"request_ids": [r for r, _ in newly]},
            )
        if committed:
            return [(job, answer, None) for job, answer, _ in built]
        assert failure is not None
        kind: type[Exception] = RuntimeError
        if isinstance(failure, AuditOutcomeUnknownError):
            kind = AuditOutcomeUnknownError
        elif isinstance(failure, AuditWriteError):
            kind = AuditWriteError
        return [(job, None, _copy(failure, kind)) for job, _, _ in built]


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
