"""Prometheus metrics of one service process, in the text exposition format.

Kept by hand (a few counters and one histogram) rather than with a client
library: the service needs no more, and every figure is cheap to update
from the event loop and the worker threads alike. Each uvicorn worker keeps
its own figures; the ``pid`` label tells workers apart.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections import defaultdict

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


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


class Metrics:
    """Request counts, latencies, errors, scores by band and top recommendations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency_buckets: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = defaultdict(float)
        self._latency_count: dict[str, int] = defaultdict(int)
        self._errors: dict[str, int] = defaultdict(int)
        self._scores: dict[tuple[str, str], int] = defaultdict(int)
        self._recommended: dict[tuple[str, str], int] = defaultdict(int)
        self._pid = str(os.getpid())

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request and its latency."""
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            buckets = self._latency_buckets.setdefault(route, [0] * (len(BUCKETS) + 1))
            buckets[bisect_left(BUCKETS, seconds)] += 1
            self._latency_sum[route] += seconds
            self._latency_count[route] += 1

    def count_error(self, kind: str) -> None:
        """Count one error by kind (exception class or ``validation``)."""
        with self._lock:
            self._errors[kind] += 1

    def count_scores(self, model_version: str, bands: list[str]) -> None:
        """Count scores served, by band."""
        with self._lock:
            for band in bands:
                self._scores[(model_version, band)] += 1

    def count_recommendations(self, model_version: str, programmes: list[str]) -> None:
        """Count programmes recommended, by programme ("none" for a person with none)."""
        with self._lock:
            for programme in programmes:
                self._recommended[(model_version, programme)] += 1

    def render(self) -> str:
        """Return every metric in the Prometheus text format (version 0.0.4)."""
        pid = self._pid
        lines = [
            "# HELP desist_requests_total HTTP requests by method, route and status.",
            "# TYPE desist_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self._requests.items()):
                labels = _labels(method=method, route=route, status=status, pid=pid)
                lines.append(f"desist_requests_total{labels} {n}")
            lines += [
                "# HELP desist_request_duration_seconds Request latency by route.",
                "# TYPE desist_request_duration_seconds histogram",
            ]
            for route, buckets in sorted(self._latency_buckets.items()):
                running = 0
                for bound, n in zip((*BUCKETS, float("inf")), buckets, strict=True):
                    running += n
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    labels = _labels(route=route, pid=pid, le=le)
                    lines.append(f"desist_request_duration_seconds_bucket{labels} {running}")
                labels = _labels(route=route, pid=pid)
                lines.append(
                    f"desist_request_duration_seconds_sum{labels} {self._latency_sum[route]:.6f}"
                )
                lines.append(
                    f"desist_request_duration_seconds_count{labels} {self._latency_count[route]}"
                )
            lines += [
                "# HELP desist_errors_total Failed requests by kind of error.",
                "# TYPE desist_errors_total counter",
            ]
            for kind, n in sorted(self._errors.items()):
                lines.append(f"desist_errors_total{_labels(kind=kind, pid=pid)} {n}")
            lines += [
                "# HELP desist_scores_total Scores served by model version and risk band.",
                "# TYPE desist_scores_total counter",
            ]
            for (version, band), n in sorted(self._scores.items()):
                labels = _labels(model_version=version, band=band, pid=pid)
                lines.append(f"desist_scores_total{labels} {n}")
            lines += [
                "# HELP desist_recommendations_total Top recommendations by model version and "
                "programme (none: nothing clearly beneficial).",
                "# TYPE desist_recommendations_total counter",
            ]
            for (version, programme), n in sorted(self._recommended.items()):
                labels = _labels(model_version=version, programme=programme, pid=pid)
                lines.append(f"desist_recommendations_total{labels} {n}")
        return "\n".join(lines) + "\n"
