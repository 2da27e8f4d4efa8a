"""The model registry: versions of a model, and the gated ``champion`` alias.

A training run registers a version with its figures as tags. Promotion moves
the ``champion`` alias only when the gates pass (or when forced, with who and
why recorded); either way the decision and every gate figure are written as
tags on the version, so a reviewer can see why it was or was not promoted.

The gates are declarative: a list of :class:`MetricThreshold` (a figure read
from the version's tags, the limit it must meet and in which direction, as
MLflow's ``MetricThreshold``), the calibration gate (:class:`CalibrationGate`,
which reads the record the job wrote at registration, every figure with its
limit and verdict) and the audit-only field check, built from the job's gate
config by :func:`gates_for`.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from models.contract.errors import RegistryError, VersionTagError
from models.contract.tags import (
    CALIBRATION_PASSED,
    CHAMPION,
    TAG_GATES,
    TAG_PROMOTION,
    VersionTags,
    calibration_tag,
    gate_tag,
)
from pipeline.config import GateConfig, PathwayGateConfig
from pipeline.tracking import Tracker
from pipeline.version_story import record_decision

#: The gate that no ``--force`` overrides.
AUDIT_GATE = "no_audit_only_feature"
#: The gate on the calibration record written at registration.
CALIBRATION_GATE = "calibration"


#: Optional figure of :class:`VersionFigures` -> the :class:`VersionTags` field it is read from.
_FIGURE_FIELDS = {
    "roc_auc": "test_roc_auc",
    "ece": "test_ece",
    "max_group_calibration_gap": "max_group_calibration_gap",
    "policy_value": "estimated_policy_value",
    "rnr_value": "estimated_rnr_value",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionFigures:
    """What the gates look at, read from a version's tags (risk or pathway figures)."""

    version: str
    features: tuple[str, ...]
    audit_only: tuple[str, ...]
    roc_auc: float | None = None
    ece: float | None = None
    max_group_calibration_gap: float | None = None
    policy_value: float | None = None
    rnr_value: float | None = None
    #: The calibration gate's record (entry -> text, see :class:`VersionTags`).
    calibration: tuple[tuple[str, str], ...] = ()

    def figure(self, metric: str) -> float:
        """Return figure ``metric`` (one of the optional fields), which must be recorded."""
        value = getattr(self, metric)
        if value is None:
            raise RegistryError(
                f"version {self.version} lacks the figures the gates need ({metric})"
            )
        return float(value)

    @classmethod
    def from_version(cls, version: ModelVersion, needed: tuple[str, ...] = ()) -> VersionFigures:
        """Read the figures from a registered version's tags.

        Raises
        ------
        RegistryError
            If a tag is missing or bad, or a ``needed`` figure is not
            recorded: a version without figures cannot be gated.
        """
        try:
            tags = VersionTags.from_mlflow_tags(version.tags)
        except VersionTagError as err:
            raise RegistryError(
                f"version {version.version} lacks the figures the gates need ({err})"
            ) from err
        figures = cls(
            version=str(version.version),
            features=tags.features,
            audit_only=tags.audit_only,
            calibration=tags.calibration,
            **{figure: getattr(tags, field) for figure, field in _FIGURE_FIELDS.items()},
        )
        for metric in needed:
            figures.figure(metric)
        return figures


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One gate: its figure, its limit, and whether it passed."""

    name: str
    passed: bool
    figure: float | str
    limit: float | str
    #: The figures behind the gate, one row each (the calibration gate's checks).
    details: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricThreshold:
    """A gate on one figure: an absolute limit, a tolerance against the champion, or a gain.

    Exactly one of ``threshold`` (the figure must be at most, or at least,
    this), ``champion_tolerance`` (no worse than the champion's figure by
    more than this; passes when there is no champion) and ``baseline``
    (better than another figure of the same version by ``min_gain``) is set.
    """

    name: str
    metric: str
    greater_is_better: bool
    threshold: float | None = None
    champion_tolerance: float | None = None
    baseline: str | None = None
    min_gain: float = 0.0
    baseline_label: str = ""

    def __post_init__(self) -> None:
        kinds = (self.threshold, self.champion_tolerance, self.baseline)
        if sum(kind is not None for kind in kinds) != 1:
            raise ValueError(
                f"gate {self.name}: set one of threshold, champion_tolerance or baseline"
            )

    @property
    def metrics(self) -> tuple[str, ...]:
        """The figures this gate reads."""
        return (self.metric,) if self.baseline is None else (self.metric, self.baseline)

    def check(self, candidate: VersionFigures, champion: VersionFigures | None) -> GateCheck:
        """Return this gate's check of ``candidate`` (against ``champion`` when relative to it)."""
        value = candidate.figure(self.metric)
        op = ">=" if self.greater_is_better else "<="
        if self.threshold is not None:
            limit: float = self.threshold
            shown = f"{op} {self.threshold}"
        elif self.champion_tolerance is not None:
            sign = -1.0 if self.greater_is_better else 1.0
            if champion is None:
                limit, shown = sign * 1.0, "no champion"
            else:
                limit = champion.figure(self.metric) + sign * self.champion_tolerance
                shown = f"{op} {limit:.4f} (champion v{champion.version})"
        else:
            limit = candidate.figure(str(self.baseline)) + self.min_gain
            shown = f"{op} {limit:.4f} ({self.baseline_label} + {self.min_gain})"
        passed = value >= limit if self.greater_is_better else value <= limit
        return GateCheck(self.name, passed, round(value, 4), shown)


@dataclass(frozen=True, slots=True)
class NoAuditOnlyFeature:
    """The gate that refuses a model using a forbidden or audit-only field."""

    never_features: tuple[str, ...]
    name: str = AUDIT_GATE
    metrics: tuple[str, ...] = ()

    def check(self, candidate: VersionFigures, champion: VersionFigures | None) -> GateCheck:
        """Return the check: the fields of the candidate that no model may use."""
        barred = set(self.never_features) | set(candidate.audit_only)
        forbidden = sorted(set(candidate.features) & barred)
        return GateCheck(self.name, not forbidden, ",".join(forbidden) or "none", "none")


def calibration_rows(record: tuple[tuple[str, str], ...]) -> tuple[dict[str, str], ...]:
    """Return the calibration record's checks, one row each, in the order they were written.

    Each row has ``scope`` (slugged, e.g. ``race_african_american``),
    ``check``, ``value``, ``limit``, ``status`` and ``detail``.
    """
    entries = dict(record)
    rows = []
    for key in entries:
        if not key.endswith(".status"):
            continue
        stem = key.removesuffix(".status")
        scope, check = stem.rsplit(".", 1)
        rows.append(
            {
                "scope": scope,
                "check": check,
                "value": entries.get(stem, ""),
                "limit": entries.get(f"{stem}.limit", ""),
                "status": entries[key],
                "detail": entries.get(f"{stem}.detail", ""),
            }
        )
    # Overall first, then groups by name; within a scope, the checks in the gate's order.
    order = {"noise_test": 0, "spiegelhalter_z": 1, "slope": 2, "debiased_error": 3}
    rows.sort(key=lambda r: (r["scope"] != "overall", r["scope"], order.get(r["check"], 9)))
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class CalibrationGate:
    """The gate on the calibration record a risk version carries from its job.

    The job judged the test split (:func:`pipeline.calibration_checks.evaluate_calibration_gate`)
    and wrote every figure, its limit and its verdict as tags; this gate passes
    when that record passed, and carries every figure into the promotion record.
    """

    name: str = CALIBRATION_GATE
    metrics: tuple[str, ...] = ()

    def check(self, candidate: VersionFigures, champion: VersionFigures | None) -> GateCheck:
        """Return the check: how many judged checks passed, with every check as a detail.

        Raises
        ------
        RegistryError
            If the version has no calibration record (trained before the gate existed).
        """
        entries = dict(candidate.calibration)
        if CALIBRATION_PASSED not in entries:
            raise RegistryError(
                f"version {candidate.version} has no calibration gate record "
                f"({calibration_tag(CALIBRATION_PASSED)} is missing): it was registered "
                "before the gate existed; retrain it to promote it"
            )
        rows = calibration_rows(candidate.calibration)
        judged = [r for r in rows if r["status"] in ("pass", "fail")]
        failed = [f"{r['scope']} {r['check']}" for r in judged if r["status"] == "fail"]
        figure = f"{len(judged) - len(failed)} of {len(judged)} judged checks pass"
        if failed:
            figure += f" (failed: {', '.join(failed)})"
        rate = entries.get("false_alarm_rate", "?")
        limit = f"every judged check passes (family-wise false-alarm rate {rate})"
        passed = entries[CALIBRATION_PASSED] == "true"
        return GateCheck(self.name, passed, figure, limit, rows)


Gate = MetricThreshold | NoAuditOnlyFeature | CalibrationGate


def gates_for(
    gates: GateConfig | PathwayGateConfig, never_features: tuple[str, ...]
) -> tuple[Gate, ...]:
    """Return the gates of a risk or pathway model, in the order they are recorded."""
    audit = NoAuditOnlyFeature(never_features)
    if isinstance(gates, PathwayGateConfig):
        # The policy values are the doubly robust estimates each version's run made on
        # its own held-out split.
        return (
            MetricThreshold(
                name="policy_value_not_worse_than_champion",
                metric="policy_value",
                greater_is_better=True,
                champion_tolerance=gates.value_tolerance,
            ),
            MetricThreshold(
                name="beats_needs_score_rule",
                metric="policy_value",
                greater_is_better=True,
                baseline="rnr_value",
                min_gain=gates.min_gain_over_rnr,
                baseline_label="RNR rule",
            ),
            audit,
        )
    return (
        MetricThreshold(
            name="auc_not_worse_than_champion",
            metric="roc_auc",
            greater_is_better=True,
            champion_tolerance=gates.auc_tolerance,
        ),
        CalibrationGate(),
        audit,
    )


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The result of all gates for a candidate."""

    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        """Whether every gate passed."""
        return all(check.passed for check in self.checks)

    def failures(self) -> list[str]:
        """Return the failed gates in words."""
        return [f"{c.name}: {c.figure} (limit {c.limit})" for c in self.checks if not c.passed]


def evaluate_gates(
    candidate: VersionFigures,
    champion: VersionFigures | None,
    gates: GateConfig | PathwayGateConfig,
    never_features: tuple[str, ...],
) -> GateDecision:
    """Check a candidate against the gates and the current champion.

    Parameters
    ----------
    candidate
        The version that would become champion.
    champion
        The current champion, or ``None`` when there is none yet.
    gates
        Limits (a risk model's or a pathway model's).
    never_features
        Attributes no model may use (the schema's forbidden fields), checked
        together with the candidate's own audit-only list.
    """
    return GateDecision(
        tuple(gate.check(candidate, champion) for gate in gates_for(gates, never_features))
    )


@dataclass(frozen=True, slots=True)
class PromotionResult:
    """What ``promote`` decided."""

    name: str
    version: str
    promoted: bool
    forced: bool
    decision: GateDecision
    previous_champion: str | None


def latest_version(tracker: Tracker, name: str) -> str:
    """Return the newest version number of registered model ``name``.

    Raises
    ------
    RegistryError
        If the model has no versions.
    """
    versions = tracker.client().search_model_versions(f"name = '{name}'")
    if not versions:
        raise RegistryError(f"{name} has no registered versions: train one first")
    return str(max(int(v.version) for v in versions))


def _champion(tracker: Tracker, name: str) -> ModelVersion | None:
    try:
        return tracker.client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote(
    tracker: Tracker,
    name: str,
    version: str,
    gates: GateConfig | PathwayGateConfig,
    never_features: tuple[str, ...],
    *,
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
) -> PromotionResult:
    """Move the ``champion`` alias to ``version`` if the gates pass (or if forced).

    The gate figures and the decision are written as tags on the version
    before the alias moves, so no champion exists without its record.

    Raises
    ------
    RegistryError
        If the version does not exist, lacks figures, or ``force`` has no reason.
    """
    if force and not (reason and reason.strip()):
        raise RegistryError("--force needs --reason: say why the gates are overridden")
    client = tracker.client()
    try:
        target = client.get_model_version(name, version)
    except MlflowException as err:
        raise RegistryError(f"{name} version {version} does not exist") from err
    current = _champion(tracker, name)
    rival = current if current is not None and str(current.version) != str(version) else None
    needed = tuple(dict.fromkeys(m for g in gates_for(gates, never_features) for m in g.metrics))
    decision = evaluate_gates(
        VersionFigures.from_version(target, needed),
        None if rival is None else VersionFigures.from_version(rival, needed),
        gates,
        never_features,
    )
    audit_gate = next(c for c in decision.checks if c.name == AUDIT_GATE)
    if force and not audit_gate.passed:
        raise RegistryError(
            f"{name} version {version} uses audit-only fields ({audit_gate.figure}); "
            "no --force can promote it"
        )
    promoted = decision.passed or force
    record = {
        "decision": "promoted" if decision.passed else ("forced" if force else "refused"),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": actor or getpass.getuser(),
        "champion_before": None if current is None else str(current.version),
        "checks": [
            {
                "gate": c.name,
                "passed": c.passed,
                "figure": c.figure,
                "limit": c.limit,
                **({"details": list(c.details)} if c.details else {}),
            }
            for c in decision.checks
        ],
    }
    if force:
        record["reason"] = reason
    client.set_model_version_tag(name, version, TAG_GATES, json.dumps(record))
    client.set_model_version_tag(name, version, TAG_PROMOTION, str(record["decision"]))
    for check in decision.checks:
        client.set_model_version_tag(
            name, version, gate_tag(check.name), "pass" if check.passed else "fail"
        )
    record_decision(tracker, target, record)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    return PromotionResult(
        name=name,
        version=str(version),
        promoted=promoted,
        forced=force and not decision.passed,
        decision=decision,
        previous_champion=None if current is None else str(current.version),
    )
