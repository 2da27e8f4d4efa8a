from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from serving.commands import create_key, revoke_key
from serving.database import api_keys_table, make_engine
from serving.errors import AuthenticationError, KeyStoreError
from serving.keys import KeyStore
from serving.settings import Settings
from tests.support.serving import key_store_with_key


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(make_engine(f"sqlite:///{tmp_path / 'keys.db'}"), cache_seconds=0)


def test_only_a_salted_hash_is_stored(keys: KeyStore) -> None:
    key_id, key = keys.create_key("probation-east", "score")
    _, other = keys.create_key("probation-east", "score")
    assert key.startswith(f"dsk_{key_id}_") and key != other
    with keys._engine.connect() as conn:
        rows = conn.execute(select(api_keys_table)).all()
    secret = key.split("_", 2)[2]
    for row in rows:
        assert secret not in " ".join(str(value) for value in row)
    assert rows[0].salt != rows[1].salt
    client = keys.verify(key)
    assert (client.name, client.scope, client.key_id) == ("probation-east", "score", key_id)


def test_scopes(keys: KeyStore) -> None:
    _, admin = keys.create_key("ops", "admin")
    assert keys.verify(admin).may("score") and keys.verify(admin).may("admin")
    _, scorer = keys.create_key("case", "score")
    assert not keys.verify(scorer).may("admin")
    with pytest.raises(KeyStoreError, match="scope"):
        keys.create_key("x", "superuser")


def test_revocation_by_key_or_client(keys: KeyStore) -> None:
    first_id, first = keys.create_key("police-north", "score")
    _, second = keys.create_key("police-north", "score")
    assert keys.revoke(key_id=first_id) == 1
    with pytest.raises(AuthenticationError):
        keys.verify(first)
    assert keys.verify(second).name == "police-north"
    assert keys.revoke(client="police-north") == 1
    with pytest.raises(AuthenticationError):
        keys.verify(second)
    with pytest.raises(KeyStoreError):
        keys.revoke(client="police-north")
    with pytest.raises(KeyStoreError):
        keys.revoke()


def test_a_verified_key_is_cached_for_a_while(tmp_path: Path) -> None:
    keys, _, key = key_store_with_key(tmp_path, cache_seconds=60)
    assert keys.cached(key) is None
    keys.verify(key)
    assert keys.cached(key) is not None and keys.cached(key + "x") is None


def _wait_for_refresh(keys: KeyStore) -> None:
    deadline = time.monotonic() + 10
    while keys._refreshing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not keys._refreshing


def test_a_key_in_use_is_renewed_in_the_background_before_it_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store's clock is the test's: on a loaded machine real sleeps of a fraction of the
    # cache time let the entry expire before the test looked at it.
    now = [1000.0]
    monkeypatch.setattr("serving.keys.time", SimpleNamespace(monotonic=lambda: now[0]))
    keys = KeyStore(
        make_engine(f"sqlite:///{tmp_path / 'k.db'}"), cache_seconds=1.0, refresh_seconds=0.5
    )
    _, key = keys.create_key("c", "score")
    keys.verify(key)  # cached until 1001.0
    now[0] = 1000.3
    assert keys.cached(key) is not None and not keys._refreshing  # not yet in the last 0.5 s
    now[0] = 1000.6
    assert keys.cached(key) is not None  # answered from the cache, check started
    _wait_for_refresh(keys)
    now[0] = 1001.3  # past the first check's expiry
    assert keys.cached(key) is not None


def test_a_key_revoked_elsewhere_is_forgotten_by_the_background_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    keys = KeyStore(make_engine(url), cache_seconds=60, refresh_seconds=60)
    key_id, key = keys.create_key("c", "score")
    keys.verify(key)
    # Another process (desist keys revoke): this store's cache is not cleared.
    assert KeyStore(make_engine(url)).revoke(key_id=key_id) == 1
    assert keys.cached(key) is not None  # the last answer from the cache
    _wait_for_refresh(keys)
    assert keys.cached(key) is None
    with pytest.raises(AuthenticationError):
        keys.verify(key)


def test_commands_create_and_revoke(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 's.db'}")
    key = create_key("youth-offending", "score", settings=settings)
    store = KeyStore(make_engine(settings.resolved_database_url()))
    assert store.verify(key).name == "youth-offending"
    assert revoke_key(client="youth-offending", settings=settings) == 1
    with pytest.raises(AuthenticationError):
        KeyStore(make_engine(settings.resolved_database_url())).verify(key)
