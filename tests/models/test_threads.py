"""Thread budgets: asked, from the environment, or the idle cores; limits applied and restored."""

from __future__ import annotations

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
    ("cpus", "load", "expected"),
    [(2, 0.1, 2), (2, 1.0, 1), (2, 14.0, 1), (4, 1.4, 3), (64, 0.0, 8)],
)
def test_default_is_the_idle_cores(
    monkeypatch: pytest.MonkeyPatch, cpus: int, load: float, expected: int
) -> None:
    monkeypatch.delenv("DESIST_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: cpus)
    monkeypatch.setattr(threads, "_load_average", lambda: load)
    budget = choose_threads()
    assert budget.threads == expected
    assert f"{cpus} CPUs" in budget.reason


def test_thread_limit_applies_and_restores() -> None:
    before = _openmp_limits()
    with thread_limit(1):
        assert _openmp_limits() <= {1}
    assert _openmp_limits() == before
