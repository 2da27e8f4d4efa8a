"""Two replicas behind HAProxy for real: one PostgreSQL audit log, Redis rate limits, one registry.

Each stack is started by ``pipeline.replica_stack.replicas_up`` on free
loopback ports, with a throwaway PostgreSQL database, and stopped (database
dropped) afterwards. The helpers come from ``benchmarks/bench_replicas.py``,
which measures the same set-up.

The promotion bound: each replica polls the champion alias every
``DESIST_POLL_SECONDS`` (1 s here) and then loads the new version (fetch,
digest check, build) before swapping it in whole; so a promotion reaches
every replica within the poll interval plus one model load. On this busy
2-core machine a load takes a few seconds: the test allows :data:`BOUND`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from benchmarks.bench_replicas import (
    BATCH,
    Answer,
    audit_database,
    audit_rows,
    audited_versions,
    create_score_key,
    replica_environment,
    scraped,
    send_scores,
    train_champion,
)
from benchmarks.support.registry import Store
from pipeline.replica_stack import ReplicaStackConfig, replicas_down, replicas_up
from tests.team_parts import free_port, haproxy_problem, port_open, redis_problem, require

pytestmark = pytest.mark.team

POLL_SECONDS = 1.0
#: Seconds from moving the alias until every replica serves the new version: one poll
#: interval plus one model load, with room for a load average of 10 on 2 cores.
BOUND = POLL_SECONDS + 20.0
#: The shared limit of the rate-limit test: a burst, then a trickle.
BURST, RATE = 20, 0.2
#: A scrape's lines counting POST requests: score requests (the only POSTs sent here),
#: whatever their status (a 429 never reaches a route: it is counted as "unmatched").
POSTS = 'desist_requests_total{method="POST",'
UNVERIFIED_RATE = 1.0  # burst max(1, 2 x rate) = 2: each worker's first request verifies the key
#: How long the rate-limit test sends: long enough for all four workers' first key checks
#: (two at once, then one a second from the address bucket) and the client's whole burst.
SECONDS = 5.0


@dataclass(frozen=True)
class Replicas:
    config: ReplicaStackConfig
    key: str
    database_url: str
    store: Store

    def served_versions(self) -> list[str]:
        """Ask each replica, past the proxy, which version it serves."""
        return [
            requests.get(f"{self.config.replica_url(p)}/readyz", timeout=10).json()["version"]
            for p in self.config.replica_ports
        ]

    def counted(self, prefix: str) -> list[float]:
        """Each replica's sum of the samples starting with ``prefix``, from one scrape of it."""
        return [scraped(self.config.replica_url(p), prefix) for p in self.config.replica_ports]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Store:
    postgres = None if port_open("127.0.0.1", 5432) else "PostgreSQL is not on 127.0.0.1:5432"
    for problem in (haproxy_problem(), redis_problem(), postgres):
        require(problem)
    return train_champion(tmp_path_factory.mktemp("replicas-registry"))


def start(registry: Store, home: Path, workers: int, **settings: object) -> Iterator[Replicas]:
    with audit_database() as database_url:
        environ = replica_environment(
            home / "service", registry, database_url, metrics_access="open", **settings
        )
        config = ReplicaStackConfig(
            home=home / "stack",
            proxy_port=free_port(),
            replica_ports=(free_port(), free_port()),
            workers=workers,
        )
        key = create_score_key(environ)
        replicas_up(config, environ)
        try:
            yield Replicas(config, key, database_url, registry)
        finally:
            replicas_down(config)


@pytest.fixture(scope="module")
def replicas(registry: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """Two one-worker replicas polling the alias, with a limit no client reaches (in Redis)."""
    yield from start(
        registry,
        tmp_path_factory.mktemp("replicas"),
        workers=1,
        poll_seconds=POLL_SECONDS,
        rate_limit_per_second=100_000,
        rate_limit_burst=100_000,
    )


def test_2000_requests_through_the_proxy_all_succeed_and_are_all_audited(
    replicas: Replicas,
) -> None:
    answers = send_scores(replicas.config.url, replicas.key, 2_000, clients=4)
    statuses = [a.status for a in answers]
    assert len(statuses) == 2_000 and set(statuses) == {200}
    audited = audited_versions(replicas.database_url)
    assert {a.request_id for a in answers} <= audited.keys()
    assert len(audited) == 2_000  # one database: every 200 of either replica, nothing more
    assert audit_rows(replicas.database_url) == 2_000 * BATCH
    time.sleep(0.5)  # a worker counts a request once its answer is sent
    served = replicas.counted(POSTS)
    assert all(n > 0 for n in served) and sum(served) == 2_000  # both replicas took a share


def test_a_promotion_reaches_both_replicas_within_the_bound_and_no_answer_mixes_versions(
    replicas: Replicas,
) -> None:
    assert replicas.served_versions() == ["1", "1"]
    new = replicas.store.add_version()
    stop = threading.Event()
    answers: list[Answer] = []
    clients = threading.Thread(
        target=lambda: answers.extend(
            send_scores(replicas.config.url, replicas.key, 10**9, clients=2, stop=stop)
        )
    )
    clients.start()
    time.sleep(1.0)  # answers from before the promotion
    moved = time.monotonic()
    replicas.store.set_champion(new)
    while time.monotonic() - moved < BOUND + 5 and replicas.served_versions() != [new, new]:
        time.sleep(0.2)
    switched = time.monotonic()
    time.sleep(1.5)  # answers from after it
    stop.set()
    clients.join(timeout=60)
    print(f"the promotion reached both replicas {switched - moved:.1f} s after the alias moved")
    assert replicas.served_versions() == [new, new] and switched - moved <= BOUND
    assert answers and {a.status for a in answers} == {200}
    assert {a.model_version for a in answers if a.sent < moved} == {"1"}
    assert {a.model_version for a in answers if a.sent > switched} == {new}
    # Each answer names one version, and each of its audit rows was scored by that version.
    audited = audited_versions(replicas.database_url)
    assert all(audited[str(a.request_id)] == {a.model_version} for a in answers)


def test_one_rate_limit_holds_across_both_replicas_and_all_their_workers(
    registry: Store, tmp_path: Path
) -> None:
    for replicas in start(
        registry,
        tmp_path,
        workers=2,
        rate_limit_per_second=RATE,
        rate_limit_burst=BURST,
        unverified_per_second=UNVERIFIED_RATE,
    ):
        # For a fixed time, not a fixed count: refusals come back in a millisecond, so 200
        # requests could all be spent before a worker's first key check (a slow hash) ends,
        # leaving the burst unspent (14 of 20 answered on a busy CI run).
        stop = threading.Event()
        timer = threading.Timer(SECONDS, stop.set)
        started = time.monotonic()
        timer.start()
        answers = send_scores(replicas.config.url, replicas.key, 10**9, clients=4, stop=stop)
        seconds = time.monotonic() - started
        sent = len(answers)
        statuses = [a.status for a in answers]
        assert set(statuses) <= {200, 429}
        ok = statuses.count(200)
        # Every limit was decided in Redis (none by a worker alone, as while Redis is away).
        assert replicas.counted("desist_rate_limit_fallbacks_total") == [0, 0]
        # One budget: the client's burst and trickle, plus the verifying requests the
        # address bucket lets through. Buckets per replica would allow at least 2 x BURST,
        # per worker 4 x BURST.
        budget = BURST + RATE * seconds + 2 + UNVERIFIED_RATE * seconds
        assert BURST <= ok <= budget < 2 * BURST, (ok, budget)
        assert audit_rows(replicas.database_url) == ok * BATCH
        time.sleep(0.5)  # a worker counts a request once its answer is sent
        # One scrape of a replica counts all its workers: the two replicas' scrapes add up
        # to every request sent, whichever worker answers each scrape.
        scrapes = [replicas.counted(POSTS) for _ in range(3)]
        assert all(sum(counts) == sent for counts in scrapes), (sent, scrapes)
