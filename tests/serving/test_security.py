"""Security of the service: rate limits, CORS, where it may listen, what it deserialises,
what it logs."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

import serving.commands
import serving.keys
from benchmarks.support.assessments import assessment
from benchmarks.support.registry import Store
from models.contract.artifact import check_artifact_format
from models.contract.errors import UntrustedArtifactError
from serving.database import make_engine
from serving.errors import AuthenticationError, DatabaseUnavailableError, UnsafeConfigurationError
from serving.keys import KeyStore
from serving.logs import BackgroundHandler, JsonFormatter, describe_exception, get_logger
from serving.metrics import MULTIPROCESS_ENV
from serving.ratelimit import TokenBuckets
from serving.security import check_listen_address, is_loopback
from serving.settings import Settings
from tests.support.serving import Service, key_store_with_key, make_settings, start_service

# --- rate limits ---


def test_token_buckets_allow_the_burst_then_the_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", now=0.0) == pytest.approx(0.5)
    assert buckets.take("b", now=0.0) == 0.0  # each identity has its own bucket
    assert buckets.take("a", now=0.5) == 0.0  # one token back after 1/rate seconds
    assert buckets.take("a", now=0.5) > 0


def test_token_buckets_forget_idle_identities_under_a_flood() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_entries=100)
    for i in range(1_000):
        buckets.take(f"guesser-{i}", now=float(i))
    assert len(buckets._buckets) <= 101


@pytest.fixture
def limited(trained_store: Store, tmp_path: Path) -> Iterator[Service]:
    yield from start_service(
        make_settings(
            trained_store,
            tmp_path,
            rate_limit_per_second=1.0,
            rate_limit_burst=3,
            unverified_per_second=1.0,
        )
    )


def test_a_client_over_its_rate_gets_429_with_retry_after(limited: Service) -> None:
    statuses = [limited.score([assessment()]).status_code for _ in range(6)]
    assert statuses[:4] == [200] * 4  # the first verifies the key (address bucket), then 3
    assert statuses[4:] == [429, 429]
    response = limited.score([assessment()])
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"] == "rate_limited"
    # Health, readiness and metrics are never limited.
    assert limited.client.get("/readyz").status_code == 200
    # Another client has its own bucket.
    assert limited.score([assessment()], key=limited.admin_key).status_code == 200


def test_key_guessing_is_limited_per_address(limited: Service) -> None:
    guesses = [
        limited.score([assessment()], key=f"dsk_{i:012x}_guess").status_code for i in range(4)
    ]
    assert guesses[:2] == [401, 401] and 429 in guesses[2:]


# --- CORS ---


def test_no_cors_headers_unless_configured(service: Service) -> None:
    preflight = service.client.options(
        "/v1/risk-scores",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    scored = service.client.post(
        "/v1/risk-scores",
        json={"assessments": [assessment()]},
        headers={**service.headers(), "Origin": "https://evil.example"},
    )
    assert "access-control-allow-origin" not in scored.headers


def test_cors_allows_only_the_configured_origins(trained_store: Store, tmp_path: Path) -> None:
    settings = make_settings(trained_store, tmp_path, cors_origins=("https://case.example",))
    for service in start_service(settings):
        request = {"Access-Control-Request-Method": "POST"}
        allowed = service.client.options(
            "/v1/risk-scores", headers={**request, "Origin": "https://case.example"}
        )
        assert allowed.headers["access-control-allow-origin"] == "https://case.example"
        refused = service.client.options(
            "/v1/risk-scores", headers={**request, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in refused.headers


# --- where the service may listen ---


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.0.9", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.4", False),
        ("scoring.internal", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_refuses_to_listen_beyond_loopback_without_a_key() -> None:
    check_listen_address("127.0.0.1", active_keys=0)
    check_listen_address("0.0.0.0", active_keys=1)
    with pytest.raises(UnsafeConfigurationError, match="no API key"):
        check_listen_address("0.0.0.0", active_keys=0)


def test_desist_serve_refuses_an_open_keyless_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main
    from serving.commands import create_key, revoke_key
    from serving.settings import Settings, get_settings

    monkeypatch.setenv("DESIST_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    get_settings.cache_clear()
    started: list[str] = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: started.append(k["host"]))
    try:
        assert main(["serve", "--host", "0.0.0.0", "--port", "9"]) == 2
        assert "no API key is configured" in capsys.readouterr().err
        assert started == []
        settings = Settings()
        create_key("probation", "score", settings=settings)
        assert main(["serve", "--host", "0.0.0.0", "--port", "9"]) == 0
        revoke_key(client="probation", settings=settings)  # revoked keys do not count
        assert main(["serve", "--host", "0.0.0.0", "--port", "9"]) == 2
        assert main(["serve", "--host", "127.0.0.1", "--port", "9"]) == 0
        assert started == ["0.0.0.0", "127.0.0.1"]
    finally:
        get_settings.cache_clear()


# --- keys ---


def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record the salt of every scrypt the key store runs from now on."""
    hashed: list[bytes] = []
    real = serving.keys._hash
    monkeypatch.setattr(serving.keys, "_hash", lambda s, salt: hashed.append(salt) or real(s, salt))
    return hashed


def test_an_unknown_key_id_costs_the_same_hash_as_a_wrong_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, key_id, key = key_store_with_key(tmp_path, cache_seconds=0)
    hashed = count_hashes(monkeypatch)
    for attempt in (f"dsk_{key_id}_wrong", "dsk_ffffffffffff_wrong"):
        with pytest.raises(AuthenticationError, match="unknown or revoked"):
            keys.verify(attempt)
    keys.revoke(key_id=key_id)
    with pytest.raises(AuthenticationError):
        keys.verify(key)
    assert len(hashed) == 3  # one scrypt each: known id, unknown id, revoked key


def test_concurrent_checks_of_one_key_cost_one_scrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, _, key = key_store_with_key(tmp_path, cache_seconds=60)
    hashed = count_hashes(monkeypatch)
    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(keys.verify, [key] * 8))
    assert {c.name for c in clients} == {"c"}
    assert len(hashed) == 1


def test_an_expired_key_still_counts_as_its_client_for_rate_limits(tmp_path: Path) -> None:
    keys, key_id, key = key_store_with_key(tmp_path, cache_seconds=0)
    assert keys.known(key) is None
    keys.verify(key)
    assert keys.cached(key) is None  # expired at once: authentication checks again
    known = keys.known(key)
    assert known is not None and known.name == "c"
    keys.revoke(key_id=key_id)
    with pytest.raises(AuthenticationError):
        keys.verify(key)
    assert keys.known(key) is None  # a key that failed its check is forgotten


def test_an_unreadable_key_store_is_unavailable_not_unauthenticated(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    keys = KeyStore(engine, cache_seconds=0)
    _, key = keys.create_key("c", "score")
    (tmp_path / "k.db").unlink()
    engine.dispose()
    (tmp_path / "k.db").mkdir()  # a directory: SQLite cannot open it
    with pytest.raises(DatabaseUnavailableError):
        keys.verify(key)


# --- model files: verified before anything is deserialised ---


class _Planted:
    """Unpickling this creates a file: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _as_pickle_model(files: Path, marker: Path) -> None:
    description = yaml.safe_load((files / "MLmodel").read_text())
    flavor = description["flavors"]["sklearn"]
    flavor["serialization_format"] = "pickle"
    flavor["pickled_model"] = "model.pkl"
    description["flavors"]["python_function"]["model_path"] = "model.pkl"
    (files / "MLmodel").write_text(yaml.safe_dump(description))
    (files / "model.pkl").write_bytes(pickle.dumps(_Planted(marker)))


@pytest.mark.parametrize("retag", [False, True], ids=["digest-mismatch", "digest-rewritten"])
def test_a_planted_pickle_is_never_unpickled(store: Store, tmp_path: Path, retag: bool) -> None:
    marker = tmp_path / "unpickled"
    files = store.copy_champion_files(tmp_path / "tampered")
    _as_pickle_model(files, marker)
    store.set_champion(store.add_version_from(files, retag=retag))
    for service in start_service(make_settings(store, tmp_path)):
        assert service.client.get("/readyz").status_code == 503
        assert service.score([assessment()]).status_code == 503
        reason = service.client.app.state.holder.last_error  # type: ignore[attr-defined]
    assert not marker.exists()
    assert ("only skops is loaded" if retag else "does not match the registered") in reason


def test_only_skops_with_trusted_types_and_no_code_is_loaded(tmp_path: Path) -> None:
    files = tmp_path / "model"
    files.mkdir()

    def describe(**flavor: object) -> None:
        trusted = ["models.calibration.ScoreCalibratedClassifier"]
        base = {"serialization_format": "skops", "skops_trusted_types": trusted}
        description = {"flavors": {"sklearn": {**base, **flavor}}}
        (files / "MLmodel").write_text(yaml.safe_dump(description))

    describe()
    check_artifact_format(files, "m", "1")
    for flavor, reason in [
        ({"serialization_format": "cloudpickle"}, "only skops"),
        ({"skops_trusted_types": ["models.x.Y", "os.system"]}, "os.system"),
        # Exact names only: any installed package named ``models`` would match a prefix.
        ({"skops_trusted_types": ["models.x.Y"]}, "models.x.Y"),
        ({"code": "code"}, "bundles code"),
    ]:
        describe(**flavor)
        with pytest.raises(UntrustedArtifactError, match=reason):
            check_artifact_format(files, "m", "1")
    (files / "MLmodel").write_text(": not yaml : [")
    with pytest.raises(UntrustedArtifactError, match="MLmodel"):
        check_artifact_format(files, "m", "1")


# --- logs ---


def test_logged_errors_keep_frames_but_not_messages_that_may_quote_inputs() -> None:
    try:
        try:
            {"subject_ref": "case-77"}["age"]
        except KeyError as err:
            raise ValueError("age 'case-77' is bad") from err
    except ValueError as err:
        raised = err
    text = describe_exception(raised)
    assert "case-77" not in text
    assert "ValueError: (message withheld)" in text and "caused by" in text
    assert "KeyError" in text and "test_security.py" in text
    safe = describe_exception(UnsafeConfigurationError("refusing to listen on 0.0.0.0"))
    assert "refusing to listen on 0.0.0.0" in safe
    record = logging.makeLogRecord({"msg": "boom", "exc_info": (ValueError, raised, None)})
    assert "case-77" not in JsonFormatter().format(record)


def test_log_lines_are_written_in_order_off_the_caller_and_warnings_at_once() -> None:
    stream = io.StringIO()
    handler = BackgroundHandler(stream, interval=60)  # no timed write during the test
    handler.setFormatter(JsonFormatter())
    logger = get_logger("test.background")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for i in range(3):
        logger.info("line", extra={"n": i})
    assert stream.getvalue() == ""  # the caller did not write
    logger.warning("now")
    deadline = time.monotonic() + 5
    while stream.getvalue().count("\n") < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line.get("n") for line in lines] == [0, 1, 2, None]
    assert lines[-1]["message"] == "now"
    logger.info("last")
    handler.flush()
    assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "last"
    logger.handlers[:] = []


# --- exposure by configuration (issue 16, item 9) and forwarded headers (item 4) ---

OPERATIONS_PAGES = ["/docs", "/redoc", "/openapi.json", "/metrics"]


@pytest.mark.parametrize("path", OPERATIONS_PAGES)
def test_docs_and_metrics_need_a_key_by_default(service: Service, path: str) -> None:
    refused = service.client.get(path)
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthenticated"
    assert (
        service.client.get(path, headers={"Authorization": "Bearer dsk_0_wrong"}).status_code == 401
    )
    assert service.client.get(path, headers=service.headers()).status_code == 200
    assert service.client.get(path, headers=service.headers(service.admin_key)).status_code == 200


@pytest.mark.parametrize("path", OPERATIONS_PAGES)
def test_docs_and_metrics_open_to_listed_addresses_or_when_configured(
    trained_store: Store, tmp_path: Path, path: str
) -> None:
    settings = make_settings(trained_store, tmp_path, operations_addresses=("10.0.0.0/8",))
    for service in start_service(settings):
        app = service.client.app
        with TestClient(app, client=("10.1.2.3", 5000)) as inside:
            assert inside.get(path).status_code == 200
        with TestClient(app, client=("192.0.2.7", 5000)) as outside:
            assert outside.get(path).status_code == 401
    settings = make_settings(
        trained_store, tmp_path / "open", docs_access="open", metrics_access="open"
    )
    for service in start_service(settings):
        assert service.client.get(path).status_code == 200


def test_docs_can_be_turned_off(trained_store: Store, tmp_path: Path) -> None:
    settings = make_settings(trained_store, tmp_path, docs_access="off")
    for service in start_service(settings):
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert service.client.get(path, headers=service.headers()).status_code == 404


def test_no_redirect_is_built_from_the_clients_host(service: Service) -> None:
    answer = service.client.post(
        "/v1/risk-scores/",
        json={"assessments": [assessment()]},
        headers={**service.headers(), "Host": "evil.example"},
        follow_redirects=False,
    )
    assert answer.status_code == 404
    assert "location" not in answer.headers


def test_serve_trusts_forwarded_headers_only_from_configured_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, object]] = []
    monkeypatch.setattr(serving.commands.uvicorn, "run", lambda *a, **kw: seen.append(kw))
    monkeypatch.setattr(serving.commands, "get_settings", lambda: Settings())
    serving.commands.serve()
    assert seen[-1]["proxy_headers"] is False  # uvicorn's default trusted 127.0.0.1
    assert seen[-1]["server_header"] is False
    assert seen[-1]["http"] == "serving.protocol:BoundedHttpToolsProtocol"
    monkeypatch.setattr(
        serving.commands, "get_settings", lambda: Settings(trusted_proxies=("10.0.0.5",))
    )
    serving.commands.serve()
    assert seen[-1]["proxy_headers"] is True
    assert seen[-1]["forwarded_allow_ips"] == ["10.0.0.5"]


def test_serve_with_several_workers_gives_them_one_emptied_metrics_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(serving.commands.uvicorn, "run", lambda *a, **kw: None)
    monkeypatch.setattr(serving.commands, "get_settings", lambda: Settings(home=tmp_path))
    monkeypatch.setenv(MULTIPROCESS_ENV, "set")  # so that the undo removes what serve sets
    monkeypatch.delenv(MULTIPROCESS_ENV)
    serving.commands.serve(port=8123)
    assert MULTIPROCESS_ENV not in os.environ  # one worker keeps its figures in memory
    stale = tmp_path / "prometheus" / "8123" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier run's counts")
    serving.commands.serve(port=8123, workers=2)
    assert os.environ[MULTIPROCESS_ENV] == str(tmp_path / "prometheus" / "8123")
    assert not stale.exists()
