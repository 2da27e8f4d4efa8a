"""Thread budgets: asked, from the environment, or the idle cores; limits applied and restored."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

# Loads the OpenMP runtime histogram boosting uses, so its pool is there to limit.
import sklearn.ensemble  # noqa: F401
from threadpoolctl import threadpool_info

from models import threads
from models.threads import ThreadBudget, choose_threads, thread_limit


def _openmp_limits() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"}


def test_asked_budget_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESIST_THREADS", "3")
    assert choose_threads(2) == ThreadBudget(2, "asked")


def test_environment_gives_the_budget_when_none_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESIST_THREADS", "3")
    assert choose_threads() == ThreadBudget(3, "DESIST_THREADS")


@pytest.mark.parametrize("bad", ["0", "two", "-1"])
def test_a_bad_environment_budget_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("DESIST_THREADS", bad)
    with pytest.raises(ValueError, match=r"DESIST_THREADS|at least 1"):
        choose_threads()


@pytest.mark.parametrize(
    ("cpus", "busy", "expected"),
    [(2, 0.1, 2), (2, 1.0, 1), (2, 2.0, 1), (4, 1.4, 3), (64, 0.0, 8)],
)
def test_default_is_the_cores_other_work_leaves_idle(
    monkeypatch: pytest.MonkeyPatch, cpus: int, busy: float, expected: int
) -> None:
    monkeypatch.delenv("DESIST_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: frozenset(range(cpus)))
    monkeypatch.setattr(threads, "busy_cores", lambda _cpus: busy)
    # A stale load average (pip just finished) must not decide when the counters are there.
    monkeypatch.setattr(threads, "_load_average", lambda: 14.0)
    budget = choose_threads()
    assert budget.threads == expected
    assert budget.reason == f"{cpus} CPUs, {busy:.1f} busy with other work"


def test_without_cpu_counters_the_load_average_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESIST_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: frozenset({0, 1}))
    monkeypatch.setattr(threads, "busy_cores", lambda _cpus: None)
    monkeypatch.setattr(threads, "_load_average", lambda: 1.0)
    assert choose_threads() == ThreadBudget(1, "2 CPUs, 1-minute load 1.0")


def test_cpu_counters_are_read_per_core(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text(
        "cpu  30 0 10 100 0 0 0 0 0 0\n"
        "cpu0 20 0 5 40 10 1 1 3 0 0\n"
        "cpu1 10 0 5 60 0 0 0 0 0 0\n"
        "intr 12345\n"
    )
    assert threads._cpu_times(str(stat)) == {"cpu0": (30, 80), "cpu1": (15, 75)}
    assert threads._cpu_times(str(tmp_path / "absent")) == {}


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="no /proc/stat (not Linux)")
def test_a_process_spinning_on_a_core_is_seen_busy() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started and spinning
        busy = threads.busy_cores(threads.available_cpus(), seconds=0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy is not None
    assert busy >= 0.6  # one core at 100 %, give or take the scheduler's ticks


def test_thread_limit_applies_and_restores() -> None:
    before = _openmp_limits()
    with thread_limit(1):
        assert _openmp_limits() <= {1}
    assert _openmp_limits() == before
