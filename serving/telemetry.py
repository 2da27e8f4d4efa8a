"""FastAPI's own OpenTelemetry support: whether it is on, decided when the service starts.

FastAPI (from 0.165) asks on every request whether any OpenTelemetry provider
is configured: the three global providers' look-ups (each reads the
environment while none is set), 3 % of the event loop's time per
one-assessment request. desist configures none itself. The service asks once,
when it starts (after FastAPI's own start-up configuration), and keeps the answer:

- a provider configured by then: FastAPI's telemetry runs as FastAPI has it,
  with its check on every request;
- none: the check is skipped until the service stops.

How an operator turns it on: configure a provider before the service starts,
for example by running it under ``opentelemetry-instrument``, or with
``FASTAPI_OTEL_AUTO_CONFIGURE=true`` and ``OTEL_EXPORTER_OTLP_ENDPOINT`` set (FastAPI
adds the OTLP exporters at start-up; they need its ``opentelemetry`` extra). A
provider first configured while the service runs is used from its next start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI


def _never() -> bool:
    return False


@contextmanager
def native_telemetry_settled(app: FastAPI) -> Iterator[bool]:
    """Within the block, FastAPI's telemetry of ``app`` is on only if it was on at its start.

    Yields whether it is on. Entered in the app's lifespan, so after FastAPI's
    start-up configuration; on leaving, FastAPI asks on every request again.
    A FastAPI without native telemetry is left as it is (and yields ``False``).
    """
    native = getattr(app, "_native_telemetry", None)
    enabled = getattr(native, "enabled", None)
    if native is None or enabled is None:
        yield False
        return
    if vars(native).get("enabled") is _never:
        yield False  # settled by another lifespan of this app, still running: it restores
        return
    on = bool(enabled())
    if not on:
        # An instance attribute in front of the class's method: FastAPI's __call__ finds it.
        native.enabled = _never
    try:
        yield on
    finally:
        if vars(native).get("enabled") is _never:
            del native.enabled
