"""Property-based requests against the service's own OpenAPI schema (schemathesis 4).

Every operation is driven with schema-valid ("positive") and schema-breaking
("negative") requests, each with every key given (no key, score, admin,
outcomes). Each response is checked: never a 5xx, status code, content type,
headers and body as documented, and (with a valid key) schema-breaking data
refused. Failures are collected rather than raised, so one run counts
everything.

Generated names almost never match anything served, so every other positive
decision is steered to a score the run was served (its request id and
subject_ref), and every other positive card request to a model version
``/v1/models`` listed: decisions and cards are then recorded and answered for
real, not only refused with 404.

Used by ``tests/serving/test_hostile.py`` (a few hundred requests, in
process) and ``benchmarks/bench_fuzz.py`` (thousands, over HTTP).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

#: The operations that serve answers, and the field their answers are listed in.
#: Each route's answers, and so its people, each with one row in the recommendations log (an
#: allocation's people too, placed or not) or the scores log.
ANSWERED = {
    "/v1/risk-scores": "scores",
    "/v1/pathway-recommendations": "recommendations",
    "/v1/pathway-allocations": "allocations",
}

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
    decisions_recorded: int = 0
    outcomes_recorded: int = 0
    #: (request id, subject_ref) of each score or recommendation answered, to decide on.
    served: list[tuple[str, str]] = field(default_factory=list)
    #: (name, version) of each model version ``/v1/models`` listed, to ask for its card.
    versions: list[tuple[str, str]] = field(default_factory=list)
    steered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    statuses_by_operation: defaultdict[str, Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    server_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    unbreakable: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as plain JSON values."""
        return {
            "requests": self.requests,
            "scores_returned": self.scores_returned,
            "recommendations_returned": self.recommendations_returned,
            "decisions_recorded": self.decisions_recorded,
            "outcomes_recorded": self.outcomes_recorded,
            "steered_to_served_names": self.steered,
            "server_errors": len(self.server_errors),
            "check_failures": len(self.failures),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "by_operation": dict(sorted(self.by_operation.items())),
            "statuses_by_operation": {
                operation: {str(k): v for k, v in sorted(statuses.items())}
                for operation, statuses in sorted(self.statuses_by_operation.items())
            },
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
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the service's own schema: nothing to fuzz if it is broken
        operations.append(result.ok())
    # What serves answers and lists versions first: decisions and cards are steered to them.
    operations.sort(key=lambda op: (op.path not in ANSWERED, op.path != "/v1/models"))
    for operation in operations:
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
    positive = " positive " in label

    def send(case: Case) -> None:
        if positive and report.requests % 2 == 0:
            _steer(case, report)
        response = case.call(base_url=base_url, headers=headers)
        _count(report, label, case, response)
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


def _steer(case: Case, report: FuzzReport) -> None:
    """Point a schema-valid decision or card request at something that exists."""
    path = case.operation.path
    if path == "/v1/decisions" and report.served and isinstance(case.body, dict):
        request_id, subject_ref = report.served[report.requests % len(report.served)]
        case.body = {**case.body, "request_id": request_id, "subject_ref": subject_ref}
        report.steered += 1
    elif path.endswith("/card") and report.versions:
        name, version = report.versions[report.requests % len(report.versions)]
        case.path_parameters = {"name": name, "version": version}
        report.steered += 1


def _count(report: FuzzReport, label: str, case: Case, response: Any) -> None:
    """Count one answer, and remember what it served (to decide on, or ask the card of)."""
    status = response.status_code
    report.requests += 1
    report.statuses[status] += 1
    report.by_operation[label] += 1
    report.statuses_by_operation[case.operation.label][status] += 1
    if status >= 500:
        report.server_errors.append(f"{label}: {status} {response.text[:200]}")
    if status not in (200, 201):
        return
    path = case.operation.path
    if path in ANSWERED:
        body = response.json()
        answers = body[ANSWERED[path]]
        report.served.extend((body["request_id"], answer["subject_ref"]) for answer in answers)
        if path == "/v1/risk-scores":
            report.scores_returned += len(answers)
        else:
            report.recommendations_returned += len(answers)
    elif path == "/v1/decisions":
        report.decisions_recorded += 1
    elif path == "/v1/outcomes":
        report.outcomes_recorded += response.json()["rows"]
    elif path == "/v1/models":
        models = response.json()["models"]
        report.versions = [(model["name"], model["version"]) for model in models]
