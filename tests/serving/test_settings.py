from __future__ import annotations

from pathlib import Path

import pytest

from serving.settings import Settings, get_settings


def test_defaults_live_under_desist_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DESIST_HOME", str(tmp_path))
    monkeypatch.setenv("DESIST_MAX_BATCH", "50")
    settings = Settings()
    assert settings.resolved_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'serving.db'}"
    assert settings.max_batch == 50 and settings.model_alias == "champion"


def test_mlflow_tracking_uri_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("DESIST_DATABASE_URL", "postgresql+psycopg://svc@db/desist")
    settings = Settings()
    assert settings.resolved_tracking_uri() == "http://mlflow.internal:5000"
    assert settings.resolved_database_url() == "postgresql+psycopg://svc@db/desist"


def test_get_settings_is_cached() -> None:
    assert get_settings() is get_settings()


def test_security_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert defaults.cors_origins == () and defaults.rate_limit_per_second > 0
    monkeypatch.setenv("DESIST_CORS_ORIGINS", '["https://case.example"]')
    monkeypatch.setenv("DESIST_RATE_LIMIT_PER_SECOND", "0")
    monkeypatch.setenv("DESIST_UNVERIFIED_PER_SECOND", "2.5")
    settings = Settings()
    assert settings.cors_origins == ("https://case.example",)
    assert settings.rate_limit_per_second == 0 and settings.unverified_per_second == 2.5
