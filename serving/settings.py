"""Configuration of the scoring service, read from ``DESIST_*`` environment variables.

Nothing is read at import: :func:`get_settings` builds the settings on first
call (and caches them), so tests and the CLI can pass their own.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.contract.tags import CHAMPION


def _seconds(default: float, description: str) -> Any:
    """Return the field of a positive duration in seconds (a wait, a deadline or a timeout).

    Every timeout of the service must be above zero: a zero wait would fail
    every request, so it is refused when the settings are read.
    """
    return Field(default=default, gt=0, description=description)


class Settings(BaseSettings):
    """Everything the service needs to start; each field is ``DESIST_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="DESIST_", extra="ignore", frozen=True)

    home: Path = Field(
        default=Path(".desist"), description="Working folder for run state (DESIST_HOME)."
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking and registry store; default MLFLOW_TRACKING_URI, "
        "else the embedded SQLite store under home.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the audit and key database; default SQLite under home.",
    )
    model_name: str = Field(default="desist-risk", description="Registered model to serve.")
    pathway_model_name: str = Field(
        default="desist-pathways",
        description="Registered pathway model to serve beside the risk model; "
        "POST /v1/pathway-recommendations answers 503 until one has a champion.",
    )
    model_alias: str = Field(default=CHAMPION, description="Alias of the versions to serve.")
    max_batch: int = Field(default=1000, ge=1, description="Most assessments in one request.")
    max_allocation_batch: int = Field(
        default=2000,
        ge=1,
        description="Most people in one POST /v1/pathway-allocations cohort. The cohort is "
        "allocated whole in the scoring worker, which answers nothing else meanwhile (2,000 "
        "people: 0.29 s here with the mission's model), and its body must fit "
        "DESIST_MAX_BODY_BYTES (2,000 assessments: about 1.1 MB).",
    )
    max_body_bytes: int = Field(
        default=2_000_000, ge=1024, description="Largest request body accepted, in bytes."
    )
    poll_seconds: float = Field(
        default=0.0, ge=0, description="Seconds between checks of the alias; 0 turns polling off."
    )
    top_reasons: int = Field(default=3, ge=1, le=20, description="Reasons returned per score.")
    scoring_threads: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Threads that validate, score and audit requests (per worker); each commits "
        "the audit rows of the requests waiting together in one transaction. The work holds the "
        "GIL and SQLite takes one writer at a time: more threads only add switching.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Native (OpenMP and BLAS) threads each prediction may use, per worker; "
        "default the idle cores when the service starts (models.threads.choose_threads). "
        "More threads than free cores make every prediction wait for the slowest.",
    )
    gil_switch_interval_ms: float = Field(
        default=0.5,
        gt=0,
        le=100,
        description="Python's thread switch interval while the service runs "
        "(sys.setswitchinterval), in ms. The event loop and the scoring thread hand the GIL "
        "to each other several times per request; with Python's default of 5 ms, each "
        "hand-over could wait that long.",
    )
    rate_limit_per_second: float = Field(
        default=50.0,
        ge=0,
        description="Requests a client may make per second, on average: per worker with the "
        "memory backend, across every worker and replica with redis; 0 turns the limit off.",
    )
    rate_limit_burst: int = Field(
        default=100, ge=1, description="Requests a client may make at once above that rate."
    )
    unverified_per_second: float = Field(
        default=10.0,
        ge=0,
        description="Requests per second, per source address, with a key not yet verified "
        "(no key, a wrong one, or one not checked in the last 30 s); 0 turns the limit off. "
        "Each costs a slow hash check: the limit keeps key guessing from using up the CPU.",
    )
    cors_origins: tuple[str, ...] = Field(
        default=(),
        description="Browser origins allowed to call the API (CORS); none by default, so "
        "browsers refuse cross-origin calls.",
    )
    database_connect_timeout: float = _seconds(
        2.0,
        "Seconds to wait for a new connection to the audit database (PostgreSQL: "
        "whole seconds, at least 2).",
    )
    database_statement_timeout: float = _seconds(
        1.0,
        "PostgreSQL: longest a connection may be held for one transaction (its "
        "ping, inserts and commit); past it the connection is cut and the request fails "
        "with 503. Also the server's statement_timeout.",
    )
    database_pool_timeout: float = _seconds(
        1.0,
        "Seconds to wait for a free pooled connection to the audit database.",
    )
    audit_deadline_seconds: float = _seconds(
        1.5,
        "Longest a request waits for its audit commit (or, while the commit of "
        "the requests ahead of it is stuck, in the queue): then 503 audit_unavailable, or "
        "audit_outcome_unknown if its COMMIT was sent.",
    )
    request_deadline_seconds: float = _seconds(
        5.0,
        "Longest a request waits for the scoring worker and its own scoring "
        "before 503 deadline_exceeded with Retry-After; nothing of it is recorded.",
    )

    max_header_bytes: int = Field(
        default=16_384,
        ge=1024,
        description="Largest request headers accepted, in bytes (431 above it).",
    )
    header_timeout_seconds: float = _seconds(
        5.0,
        "Seconds a client has to send a request's headers once it opened the "
        "connection or began the request; then 408 and the connection is closed.",
    )
    body_timeout_seconds: float = _seconds(
        10.0,
        "Longest gap, in seconds, between two parts of a request body; then 408.",
    )
    max_violations: int = Field(
        default=100,
        ge=1,
        le=100,
        description="Most violations listed in a 422 answer (at most 100, which is also "
        "how many the scoring step describes); violation_count gives the total.",
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto "
        "the service believes (uvicorn's forwarded_allow_ips); none by default, so the "
        "per-address rate limit keys on the real peer.",
    )
    docs_access: Literal["open", "key", "off"] = Field(
        default="key",
        description="/docs, /redoc and /openapi.json: 'key' (default) needs a valid API key "
        "of any scope or a caller in operations_addresses; 'open' for anyone; 'off' removes them.",
    )
    metrics_access: Literal["open", "key"] = Field(
        default="key",
        description="/metrics: 'key' (default) needs a valid API key or a caller in "
        "operations_addresses; 'open' for anyone.",
    )
    operations_addresses: tuple[str, ...] = Field(
        default=(),
        description="Networks (e.g. 10.0.0.0/8, 127.0.0.1/32) that may read the docs and "
        "the metrics without a key; none by default.",
    )
    rate_limit_backend: Literal["memory", "redis"] = Field(
        default="memory",
        description="Where the rate-limit buckets live: 'memory' (default), each worker its own, "
        "so N workers and R replicas allow N x R times the rate; 'redis', one bucket per client "
        "shared by every worker and replica (serving.ratelimit). While Redis is unreachable each "
        "worker falls back to its own buckets, logs a warning and counts "
        "desist_rate_limit_fallbacks_total.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis of the shared rate limits (rate_limit_backend='redis').",
    )
    redis_prefix: str = Field(
        default="desist:ratelimit:",
        description="Start of every Redis key the rate limits write (several services can "
        "share one Redis).",
    )
    redis_timeout_seconds: float = Field(
        default=0.5,
        gt=0,
        description="Longest wait for Redis to connect or answer before a request's limit is "
        "decided by the worker's own buckets (Redis is tried again 5 s later, so an outage "
        "delays one request per worker per 5 s by this much). 0.1 s was too short on a busy "
        "2-core machine.",
    )
    monitoring_snapshot: Path | None = Field(
        default=None,
        description="JSON file of the latest monitoring results (serving.metrics."
        "write_drift_snapshot; docs/monitoring.md), read at every scrape of /metrics for the "
        "desist_drift_psi and desist_drift_alert gauges; none by default (no drift gauges).",
    )

    def resolved_home(self) -> Path:
        """Return ``home`` as an absolute path."""
        return self.home.resolve()

    def metrics_dir(self, port: int) -> Path:
        """Return the prometheus multiprocess folder of the instance listening on ``port``."""
        return self.resolved_home() / "prometheus" / str(port)

    def resolved_tracking_uri(self) -> str:
        """Return the MLflow store: the setting, else ``MLFLOW_TRACKING_URI``, else SQLite in home.

        Mirrors ``pipeline.tracking.Tracker.from_environment`` so that the
        service reads the registry the training job wrote to, without
        importing the pipeline.
        """
        if self.tracking_uri:
            return self.tracking_uri
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if uri:
            return uri
        return f"sqlite:///{self.resolved_home() / 'mlflow.db'}"

    def resolved_database_url(self) -> str:
        """Return the audit database URL; default ``sqlite:///<home>/serving.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home() / 'serving.db'}"


@lru_cache
def get_settings() -> Settings:
    """Return the settings from the environment, built once per process."""
    return Settings()
