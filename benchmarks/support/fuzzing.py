"""Property-based requests against the service's own OpenAPI schema (schemathesis 4).

Every operation is driven with schema-valid ("positive") and schema-breaking
("negative") requests, each with no key, a score key and an admin key. Each
response is checked: never a 5xx, status code, content type, headers and
body as documented, and (with a valid key) schema-breaking data refused.
Failures are collected rather than raised, so one run counts everything.

Used by ``tests/serving/test_hostile.py`` (a few hundred requests, in
process) and ``benchmarks/bench_fuzz.py`` (thousands, over HTTP).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class FuzzReport:
    """What a fuzzing run sent and what came back."""

    requests: int = 0
    scores_returned: int = 0
    recommendations_returned: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    unbreakable: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as plain JSON values."""
        return {
            "requests": self.requests,
            "scores_returned": self.scores_returned,
            "recommendations_returned": self.recommendations_returned,
            "server_errors": len(self.server_errors),
            "check_failures": len(self.failures),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "by_operation": dict(sorted(self.by_operation.items())),
            "no_negative_request_possible": self.unbreakable,
            "first_failures": (self.server_errors + self.failures)[:20],
        }


def fuzz(
    schema: BaseSchema,
    keys: Mapping[str, str | None],
    *,
    examples: int,
    random_seed: int = 7,
    base_url: str | None = None,
    report: FuzzReport | None = None,
) -> FuzzReport:
    """Send generated requests to every operation; return the counts and failures.

    Parameters
    ----------
    schema
        Loaded with ``schemathesis.openapi.from_asgi`` (in process) or ``from_url``.
    keys
        Name -> API key to send (``None``: no key, whatever the case generated).
    examples
        Hypothesis examples per operation, generation mode and key (at most:
        an operation without inputs has few distinct requests).
    random_seed
        Makes the generated requests the same from run to run.
    base_url
        Server to call, for a schema loaded from a URL.
    """
    report = report if report is not None else FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for name, key in keys.items():
                headers = {"Authorization": f"Bearer {key}"} if key else None
                checks = CONFORMANCE + ([negative_data_rejection] if key else [])
                label = f"{operation.label} {mode.value} {name}"
                run = given(case=operation.as_strategy(generation_mode=mode))(
                    _sender(report, label, headers, checks, base_url)
                )
                configured = settings(
                    max_examples=examples,
                    database=None,
                    deadline=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )(seed(random_seed)(run))
                try:
                    configured()
                except Unsatisfiable:
                    # No input to break (GET /healthz): there is no negative request to send.
                    report.unbreakable.append(label)
    return report


def _sender(
    report: FuzzReport,
    label: str,
    headers: dict[str, str] | None,
    checks: list[Any],
    base_url: str | None,
) -> Callable[[Case], None]:
    def send(case: Case) -> None:
        response = case.call(base_url=base_url, headers=headers)
        report.requests += 1
        report.statuses[response.status_code] += 1
        report.by_operation[label] += 1
        if response.status_code == 200 and case.operation.path == "/v1/risk-scores":
            report.scores_returned += len(response.json()["scores"])
        if response.status_code == 200 and case.operation.path == "/v1/pathway-recommendations":
            report.recommendations_returned += len(response.json()["recommendations"])
        if response.status_code >= 500:
            report.server_errors.append(f"{label}: {response.status_code} {response.text[:200]}")
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            titles = "; ".join(
                f"{failure.title} ({failure.message[:300]})" for failure in group.exceptions
            )
            sent = response.request.body
            shown = sent[:200] if isinstance(sent, bytes | str) else sent
            report.failures.append(
                f"{label}: {response.status_code}: {titles}; sent {shown!r}; "
                f"answer {response.text[:300]}"
            )

    return send
