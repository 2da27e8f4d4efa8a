"""Rate limits shared in Redis: one budget for every app, and what happens while Redis is away.

The in-memory buckets and the 429 answer are tested in ``test_security.py``;
here the Redis backend, against the real Redis at 127.0.0.1:6379 (skipped
without it unless ``DESIST_REQUIRE_REDIS=1`` or ``DESIST_REQUIRE_TEAM=1``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import serving.ratelimit
from benchmarks.support.assessments import assessment
from benchmarks.support.registry import Store
from serving.app import create_app
from serving.commands import create_key
from serving.ratelimit import (
    RateLimitBackendError,
    RedisTokenBuckets,
    SharedOrLocalBuckets,
)
from serving.settings import Settings
from tests.support.serving import make_settings
from tests.team_parts import free_port, require_redis

BURST = 3


def limited_settings(store: Store, tmp_path: Path, redis_url: str) -> Settings:
    """A burst of 3 and (almost) no refill, in Redis under a key prefix of its own."""
    return make_settings(
        store,
        tmp_path,
        rate_limit_backend="redis",
        redis_url=redis_url,
        redis_prefix=f"desist-test:{uuid.uuid4().hex}:",
        rate_limit_per_second=0.01,
        rate_limit_burst=BURST,
    )


def statuses(client: TestClient, key: str, n: int) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    body = {"assessments": [assessment()]}
    return [
        client.post("/v1/risk-scores", json=body, headers=headers).status_code for _ in range(n)
    ]


@pytest.fixture
def two_apps(trained_store: Store, tmp_path: Path) -> Iterator[tuple[list[TestClient], str]]:
    """Two apps (as two workers or replicas would be) on one key store and one Redis."""
    settings = limited_settings(trained_store, tmp_path, require_redis())
    key = create_key("case-system", "score", settings=settings)
    with ExitStack() as stack:
        clients = [stack.enter_context(TestClient(create_app(settings))) for _ in range(2)]
        yield clients, key


def test_two_apps_share_one_limit_in_redis(two_apps: tuple[list[TestClient], str]) -> None:
    clients, key = two_apps
    # Each app's first request verifies the key (the per-address limit, off here).
    assert [statuses(client, key, 1)[0] for client in clients] == [200, 200]
    alternating = [statuses(clients[i % 2], key, 1)[0] for i in range(8)]
    # One bucket of 3 for both: with a bucket per app each would have allowed 3 (6 in all).
    assert alternating.count(200) == BURST
    assert alternating[:BURST] == [200] * BURST and set(alternating[BURST:]) == {429}


def test_redis_buckets_give_the_burst_then_the_rate() -> None:
    buckets = RedisTokenBuckets(
        require_redis(), rate=2.0, burst=3, prefix=f"desist-test:{uuid.uuid4().hex}:", timeout=1
    )

    async def spend() -> list[float]:
        try:
            return [await buckets.take("client:a") for _ in range(4)] + [
                await buckets.take("client:b")
            ]
        finally:
            await buckets.close()

    waits = asyncio.run(spend())
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0 < waits[3] <= 0.5  # 1/rate, less what refilled since the burst began
    assert waits[4] == 0.0  # another identity, another bucket


def test_an_unreachable_redis_leaves_each_app_its_own_limit(
    trained_store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings = limited_settings(trained_store, tmp_path, closed)
    key = create_key("case-system", "score", settings=settings)
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        seen = statuses(client, key, 6)
        metrics = client.app.state.metrics.render()  # type: ignore[attr-defined]
    # Neither open (no limit) nor closed (503): the worker's own bucket of 3 holds.
    assert seen == [200] * (1 + BURST) + [429, 429]
    assert "desist_rate_limit_fallbacks_total 5.0" in metrics  # every limited request counted
    warnings = [r for r in caplog.records if "fall back" in r.getMessage()]
    assert len(warnings) == 1  # one warning per outage, not one per request
    assert "ConnectionError" in warnings[0].__dict__["error"]


def test_limits_return_to_redis_when_it_answers_again(monkeypatch: pytest.MonkeyPatch) -> None:
    class Flaky:
        rate, burst = 1.0, 1.0

        def __init__(self) -> None:
            self.answers: list[float | Exception] = [RateLimitBackendError("down"), 0.25]

        async def take(self, identity: str) -> float:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    monkeypatch.setattr(serving.ratelimit, "REDIS_RETRY_SECONDS", 0.0)
    fallbacks: list[int] = []
    limits = SharedOrLocalBuckets(Flaky(), lambda: fallbacks.append(1))  # type: ignore[arg-type]

    async def twice() -> list[float]:
        return [await limits.take("client:a"), await limits.take("client:a")]

    # Down: the local bucket (burst 1) allows the first; back: Redis's answer is used.
    assert asyncio.run(twice()) == [0.0, 0.25]
    assert fallbacks == [1]
