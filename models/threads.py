"""Thread budgets: how many threads a fit or a prediction may use, chosen once per process.

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
  the 1-minute load average (rounded), at least 1 and at most
  :data:`MAX_DEFAULT_THREADS`. On a quiet 2-core machine that is 2; with one
  core kept busy, 1. One thread on a shared core costs at most the share of
  the core the fit would have had; too many threads cost orders of magnitude.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

#: The most threads chosen without being asked: the fits here gain little beyond.
MAX_DEFAULT_THREADS = 8
#: Environment variable giving the budget when none is asked for.
THREADS_VARIABLE = "DESIST_THREADS"


@dataclass(frozen=True, slots=True)
class ThreadBudget:
    """A thread budget and why it was chosen (logged with each run)."""

    threads: int
    #: ``asked`` when given, else the CPUs and the load it was derived from.
    reason: str


def available_cpus() -> int:
    """Return the CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return 0.0


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
    load = _load_average()
    idle = cpus - round(load)
    threads = max(1, min(cpus, MAX_DEFAULT_THREADS, idle))
    return ThreadBudget(threads, f"{cpus} CPUs, 1-minute load {load:.1f}")


@contextmanager
def thread_limit(threads: int) -> Iterator[None]:
    """Run the block with OpenMP and BLAS pools limited to ``threads``, then restore them.

    The limit is process-wide (the native pools have no per-thread setting),
    which is what a job or a service worker wants.
    """
    with threadpool_limits(limits=threads):
        yield
