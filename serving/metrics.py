"""Prometheus metrics of the service (prometheus-client), one scrape for the whole instance.

Request counts and latencies, errors, scores by band and top recommendations
are prometheus-client counters and a histogram. Where
``PROMETHEUS_MULTIPROC_DIR`` names a folder when the process starts (the
launchers give each instance its own, emptied: :func:`fresh_multiprocess_dir`),
every worker writes its figures to files there and a scrape answered by any
worker reports the sum over all the instance's workers, dead ones included
(a counter never goes back). Without it each process reports its own
figures, which is right for one worker.

The latest drift figures of monitoring (issue 18) are gauges read at scrape
time from a small JSON file the monitor writes (``DESIST_MONITORING_SNAPSHOT``;
format in ``docs/monitoring.md``, written by :func:`write_drift_snapshot`):
``desist_drift_psi{model,version,feature}``, ``desist_drift_alert{model,version}``,
``desist_monitoring_timestamp_seconds{model,version}`` and
``desist_drift_snapshot_ok`` (0 while the file is missing or unreadable, which
a scrape survives: the service's own metrics still answer).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from data.errors import DesistError
from serving.logs import get_logger

# ``*_created`` series double every counter's lines and multiprocess mode has none: off in both.
prometheus_client.disable_created_metrics()

log = get_logger("serving.metrics")

#: The variable prometheus-client reads, at import, to write figures to files in that folder.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Latency bucket upper bounds, in seconds.
BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def fresh_multiprocess_dir(path: Path) -> dict[str, str]:
    """Empty (or create) ``path`` for one instance's workers; return the variable to set.

    Files left by an earlier run would add its counts to the new one's, so a
    launcher calls this before every start.
    """
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return {MULTIPROCESS_ENV: str(path)}


class _Sources(CollectorRegistry):
    """What one scrape reads: the instance's (or this process's) figures, then the drift file."""

    def __init__(self, *sources: CollectorRegistry | _DriftCollector) -> None:
        super().__init__(auto_describe=False)
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


class Metrics:
    """Request counts, latencies, errors, scores by band and top recommendations.

    Each instance has its own registry (several apps can live in one test
    process); in multiprocess mode every instance of every worker writes to
    the same files, as prometheus-client does.
    """

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_ENV) or None
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "desist_requests",
            "HTTP requests by method, route and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self._latency = Histogram(
            "desist_request_duration_seconds",
            "Request latency by route.",
            ("route",),
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._errors = Counter(
            "desist_errors", "Failed requests by kind of error.", ("kind",), registry=self.registry
        )
        self._scores = Counter(
            "desist_scores",
            "Scores served by model version and risk band.",
            ("model_version", "band"),
            registry=self.registry,
        )
        self._recommended = Counter(
            "desist_recommendations",
            "Top recommendations by model version and programme (none: nothing clearly "
            "beneficial).",
            ("model_version", "programme"),
            registry=self.registry,
        )
        self._rate_limit_fallbacks = Counter(
            "desist_rate_limit_fallbacks",
            "Requests whose rate limit a worker decided alone because Redis was unreachable.",
            registry=self.registry,
        )
        # Each series' child by its label values, as given: ``labels()`` costs microseconds
        # (the values made text, a lock, a look-up), on the event loop, two or three times a
        # request. Only series prometheus-client already holds are kept here.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._score_children: dict[tuple[str, str], Counter] = {}
        self._recommended_children: dict[tuple[str, str], Counter] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request and its latency."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self._requests.labels(method, route, str(status)),
                self._latency.labels(route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_error(self, kind: str) -> None:
        """Count one error by kind (exception class or ``validation``)."""
        self._errors.labels(kind).inc()

    def count_scores(self, model_version: str, bands: list[str]) -> None:
        """Count scores served, by band.

        One increment per band, not per score: each is a write to the multiprocess
        files, on the event loop (a thousand cost milliseconds for a full batch).
        """
        counts = ((bands[0], 1),) if len(bands) == 1 else collections.Counter(bands).items()
        for band, count in counts:
            key = (model_version, band)
            child = self._score_children.get(key)
            if child is None:
                child = self._score_children[key] = self._scores.labels(model_version, band)
            child.inc(count)

    def count_recommendations(self, model_version: str, programmes: list[str]) -> None:
        """Count programmes recommended, by programme ("none" for a person with none)."""
        for programme in programmes:
            key = (model_version, programme)
            child = self._recommended_children.get(key)
            if child is None:
                child = self._recommended.labels(model_version, programme)
                self._recommended_children[key] = child
            child.inc()

    def count_rate_limit_fallback(self) -> None:
        """Count one request limited by the worker's own buckets (Redis away)."""
        self._rate_limit_fallbacks.inc()

    def render(self, drift_snapshot: Path | None = None) -> str:
        """Return every metric in the Prometheus text format (version 0.0.4).

        Parameters
        ----------
        drift_snapshot
            The monitor's snapshot file, read now for the drift gauges; none: no drift gauges.
        """
        if self.multiprocess_dir is not None:
            own = CollectorRegistry()
            MultiProcessCollector(own, path=self.multiprocess_dir)
        else:
            own = self.registry
        return generate_latest(_Sources(own, _DriftCollector(drift_snapshot))).decode()


# --- the monitor's snapshot of its latest drift figures ---


class DriftSnapshotError(DesistError):
    """The drift snapshot file cannot be read or does not hold the expected fields."""


class DriftResult(BaseModel):
    """The latest monitoring of one model version (one entry of the snapshot)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="Registered model monitored.")
    version: str = Field(min_length=1, description="Its version.")
    alert: bool = Field(description="Whether any check of the run alerted.")
    monitored_at: AwareDatetime = Field(description="When the run finished (ISO 8601, with zone).")
    psi: dict[str, float] = Field(description="PSI per feature (and 'score') against training.")
    run_id: str | None = Field(default=None, description="The MLflow monitoring run, if logged.")


class DriftSnapshot(BaseModel):
    """The snapshot file: one entry per model version, the latest run of each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    results: tuple[DriftResult, ...] = ()


def read_drift_snapshot(path: Path) -> DriftSnapshot:
    """Return the snapshot at ``path``; an absent file is an empty snapshot.

    Raises
    ------
    DriftSnapshotError
        If the file cannot be read or is not a snapshot (naming the field and reason).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DriftSnapshot()
    except OSError as err:
        raise DriftSnapshotError(f"{path}: cannot read: {err.strerror}") from err
    try:
        return DriftSnapshot.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise DriftSnapshotError(f"{path}: {where}: {first['msg']}") from err


def write_drift_snapshot(
    path: Path,
    *,
    model: str,
    version: str,
    alert: bool,
    psi: Mapping[str, float],
    run_id: str | None = None,
    monitored_at: datetime | None = None,
) -> DriftSnapshot:
    """Record the latest monitoring of ``model`` ``version`` in the snapshot; return the snapshot.

    The entry of that version is replaced, other versions' entries kept. The
    file is replaced whole (written beside it, then renamed), so a scrape
    never reads half of it; an unreadable old file is replaced by a new one.

    Raises
    ------
    DriftSnapshotError
        If the new entry is invalid (nothing is written).
    """
    try:
        entry = DriftResult(
            model=model,
            version=str(version),
            alert=alert,
            psi={str(k): float(v) for k, v in psi.items()},
            run_id=run_id,
            monitored_at=monitored_at or datetime.now(UTC),
        )
    except ValidationError as err:
        raise DriftSnapshotError(f"invalid drift snapshot entry: {err.errors()[0]['msg']}") from err
    try:
        kept = read_drift_snapshot(path).results
    except DriftSnapshotError as err:
        log.warning("replacing an unreadable drift snapshot", extra={"error": str(err)})
        kept = ()
    others = tuple(r for r in kept if (r.model, r.version) != (entry.model, entry.version))
    snapshot = DriftSnapshot(results=(*others, entry))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as out:
        out.write(json.dumps(snapshot.model_dump(mode="json"), indent=2) + "\n")
    os.replace(out.name, path)
    return snapshot


class _DriftCollector:
    """The drift gauges, from the snapshot file as it is at scrape time."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        if self.path is None:
            return []
        ok = GaugeMetricFamily(
            "desist_drift_snapshot_ok",
            "1 when the monitoring snapshot was read, 0 while it is missing or unreadable.",
        )
        try:
            snapshot = read_drift_snapshot(self.path)
        except DriftSnapshotError as err:
            log.warning("drift snapshot unreadable", extra={"error": str(err)})
            ok.add_metric([], 0)
            return [ok]
        ok.add_metric([], 1 if self.path.exists() else 0)
        psi = GaugeMetricFamily(
            "desist_drift_psi",
            "Population stability index of each feature in the latest monitoring run.",
            labels=("model", "version", "feature"),
        )
        alert = GaugeMetricFamily(
            "desist_drift_alert",
            "1 when a check of the latest monitoring run alerted, else 0.",
            labels=("model", "version"),
        )
        stamp = GaugeMetricFamily(
            "desist_monitoring_timestamp_seconds",
            "When the latest monitoring run finished (Unix time): tells a stale snapshot.",
            labels=("model", "version"),
        )
        for result in snapshot.results:
            for feature, value in sorted(result.psi.items()):
                psi.add_metric((result.model, result.version, feature), value)
            alert.add_metric((result.model, result.version), float(result.alert))
            stamp.add_metric((result.model, result.version), result.monitored_at.timestamp())
        return [ok, psi, alert, stamp]
