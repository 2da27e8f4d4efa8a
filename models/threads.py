"""Thread budgets: how many threads a fit or a prediction may use, chosen per job and service.

scikit-learn's histogram boosting runs OpenMP threads, and numpy's BLAS its
own. Left alone they start one thread per core, and when another process
keeps a core busy each parallel step waits for the slowest thread, which
shares its core: a 0.5 s boosting fit took 99.7 s on a loaded 2-core machine
(issue 15). Every job and the service therefore run inside
:func:`thread_limit` with a budget from :func:`choose_threads`:

- the number asked for (a job's ``threads`` key or ``--threads``; the
  service's ``threads`` setting), else
- ``DESIST_THREADS`` in the environment (the service's setting, and a
  default for every job of the process: the test suite sets it to 1), else
- the cores nobody else is using: the CPUs this process may run on, less
  the cores other work keeps busy now (rounded), at least 1 and at most
  :data:`MAX_DEFAULT_THREADS`. On a quiet 2-core machine that is 2; with one
  core kept busy, 1. One thread on a shared core costs at most the share of
  the core the fit would have had; too many threads cost orders of magnitude.

"Busy now" is read from the kernel's CPU counters (``/proc/stat``) over
:data:`SAMPLE_SECONDS` while this process sleeps, so only other work counts;
where there are no such counters, from the 1-minute load average. The load
average remembers the last minute: right after ``make venv`` (pip at 100 %)
it read 0.6-0.9 on a quiet machine, gave the mission one thread instead of
two, and its pathway fit took 93 s instead of 70 s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

#: The most threads chosen without being asked: the fits here gain little beyond.
MAX_DEFAULT_THREADS = 8
#: Environment variable giving the budget when none is asked for.
THREADS_VARIABLE = "DESIST_THREADS"
#: How long the CPU counters are watched to see which cores other work keeps busy.
SAMPLE_SECONDS = 0.25
#: ``/proc/stat`` columns of time a core could not give to us: all but idle and iowait.
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal


@dataclass(frozen=True, slots=True)
class ThreadBudget:
    """A thread budget and why it was chosen (logged with each run)."""

    threads: int
    #: ``asked`` when given, else the CPUs and the load it was derived from.
    reason: str


def available_cpus() -> frozenset[int]:
    """Return the CPUs this process may run on (its affinity mask, else all the machine's)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return frozenset(range(os.cpu_count() or 1))


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return 0.0


def _cpu_times(path: str = "/proc/stat") -> dict[str, tuple[int, int]]:
    """Return each core's ``(busy, total)`` clock ticks since boot; empty where unreadable."""
    try:
        with open(path, encoding="ascii") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return {}
    times: dict[str, tuple[int, int]] = {}
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or len(fields) < 8:
            continue
        ticks = [int(field) for field in fields[:8]]
        times[name] = (sum(ticks[i] for i in _BUSY_COLUMNS), sum(ticks))
    return times


def busy_cores(cpus: frozenset[int], seconds: float = SAMPLE_SECONDS) -> float | None:
    """Return how many of ``cpus`` other work keeps busy, watched for ``seconds``.

    This process sleeps meanwhile, so what it sees is everyone else. ``None``
    where the kernel's counters cannot be read (not Linux).
    """
    before = _cpu_times()
    if not before:
        return None
    time.sleep(seconds)
    after = _cpu_times()
    busy = 0.0
    for cpu in cpus:
        name = f"cpu{cpu}"
        if name not in before or name not in after:
            return None
        ticks = after[name][1] - before[name][1]
        if ticks > 0:
            busy += (after[name][0] - before[name][0]) / ticks
    return busy


def choose_threads(asked: int | None = None) -> ThreadBudget:
    """Return the thread budget: ``asked``, else ``DESIST_THREADS``, else the idle cores.

    Raises
    ------
    ValueError
        If ``asked`` or ``DESIST_THREADS`` is not a whole number of at least 1.
    """
    reason = "asked"
    if asked is None and os.environ.get(THREADS_VARIABLE, "").strip():
        text = os.environ[THREADS_VARIABLE].strip()
        if not text.isdigit():
            raise ValueError(f"{THREADS_VARIABLE} must be a whole number, not {text!r}")
        asked, reason = int(text), THREADS_VARIABLE
    if asked is not None:
        if asked < 1:
            raise ValueError(f"a thread budget must be at least 1, not {asked}")
        return ThreadBudget(asked, reason)
    cpus = available_cpus()
    busy = busy_cores(cpus)
    if busy is None:
        busy = _load_average()
        seen = f"1-minute load {busy:.1f}"
    else:
        seen = f"{busy:.1f} busy with other work"
    idle = len(cpus) - round(busy)
    threads = max(1, min(len(cpus), MAX_DEFAULT_THREADS, idle))
    return ThreadBudget(threads, f"{len(cpus)} CPUs, {seen}")


@contextmanager
def thread_limit(threads: int) -> Iterator[None]:
    """Run the block with OpenMP and BLAS pools limited to ``threads``, then restore them.

    The limit is process-wide (the native pools have no per-thread setting),
    which is what a job or a service worker wants.
    """
    with threadpool_limits(limits=threads):
        yield
