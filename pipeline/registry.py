"""The model registry: versions of a model, and the gated ``champion`` alias.

A training run registers a version with its figures as tags. Promotion moves
the ``champion`` alias only when the gates pass (or when forced, with who and
why recorded); either way the decision and every gate figure are written as
tags on the version, so a reviewer can see why it was or was not promoted.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from data.errors import DesistError

# Re-exported: the pipeline's jobs and tests take every tag name from here.
from models.registered import TAG_AUDIT_ONLY, TAG_FEATURES
from models.registered import TAG_BANDS as TAG_BANDS
from models.registered import TAG_DIGEST as TAG_DIGEST
from pipeline.config import GateConfig, PathwayGateConfig
from pipeline.tracking import Tracker

CHAMPION = "champion"

# Tags written on every registered version (figures on the test split); the digest,
# bands and feature tags that loading a model reads are defined in models/registered.py.
TAG_RUN = "desist.run_id"
TAG_FAMILY = "desist.family"
TAG_AUC = "desist.test_roc_auc"
TAG_ECE = "desist.test_ece"
TAG_GROUP_GAP = "desist.max_group_calibration_gap"
TAG_DATASET = "desist.dataset"
TAG_GATES = "desist.gates"
# Pathway models: estimated (doubly robust) policy values on their test split.
TAG_POLICY_VALUE = "desist.estimated_policy_value"
TAG_RNR_VALUE = "desist.estimated_rnr_value"


class RegistryError(DesistError):
    """A registry operation cannot be done (unknown version, missing figures)."""


@dataclass(frozen=True, slots=True)
class CandidateFigures:
    """What the gates look at, read from a version's tags."""

    version: str
    roc_auc: float
    ece: float
    max_group_calibration_gap: float
    features: tuple[str, ...]
    audit_only: tuple[str, ...]

    @classmethod
    def from_version(cls, version: ModelVersion) -> CandidateFigures:
        """Read the figures from a registered version's tags.

        Raises
        ------
        RegistryError
            If a figure is missing: a version without figures cannot be gated.
        """
        tags = version.tags
        try:
            return cls(
                version=str(version.version),
                roc_auc=float(tags[TAG_AUC]),
                ece=float(tags[TAG_ECE]),
                max_group_calibration_gap=float(tags[TAG_GROUP_GAP]),
                features=tuple(json.loads(tags[TAG_FEATURES])),
                audit_only=tuple(json.loads(tags[TAG_AUDIT_ONLY])),
            )
        except (KeyError, ValueError) as err:
            raise RegistryError(
                f"version {version.version} lacks the figures the gates need ({err})"
            ) from err


@dataclass(frozen=True, slots=True)
class PathwayFigures:
    """What the pathway gates look at, read from a version's tags."""

    version: str
    policy_value: float
    rnr_value: float
    features: tuple[str, ...]
    audit_only: tuple[str, ...]

    @classmethod
    def from_version(cls, version: ModelVersion) -> PathwayFigures:
        """Read the figures from a registered pathway version's tags.

        Raises
        ------
        RegistryError
            If a figure is missing.
        """
        tags = version.tags
        try:
            return cls(
                version=str(version.version),
                policy_value=float(tags[TAG_POLICY_VALUE]),
                rnr_value=float(tags[TAG_RNR_VALUE]),
                features=tuple(json.loads(tags[TAG_FEATURES])),
                audit_only=tuple(json.loads(tags[TAG_AUDIT_ONLY])),
            )
        except (KeyError, ValueError) as err:
            raise RegistryError(
                f"version {version.version} lacks the figures the gates need ({err})"
            ) from err


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One gate: its figure, its limit, and whether it passed."""

    name: str
    passed: bool
    figure: float | str
    limit: float | str


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
    candidate: CandidateFigures,
    champion: CandidateFigures | None,
    gates: GateConfig,
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
        Limits.
    never_features
        Attributes no model may use (the schema's forbidden fields), checked
        together with the candidate's own audit-only list.
    """
    forbidden = sorted(set(candidate.features) & (set(never_features) | set(candidate.audit_only)))
    floor = -1.0 if champion is None else champion.roc_auc - gates.auc_tolerance
    checks = (
        GateCheck(
            "auc_not_worse_than_champion",
            candidate.roc_auc >= floor,
            round(candidate.roc_auc, 4),
            "no champion" if champion is None else f">= {floor:.4f} (champion v{champion.version})",
        ),
        GateCheck(
            "calibration_error",
            candidate.ece <= gates.max_ece,
            round(candidate.ece, 4),
            f"<= {gates.max_ece}",
        ),
        GateCheck(
            "no_audit_only_feature",
            not forbidden,
            ",".join(forbidden) or "none",
            "none",
        ),
        GateCheck(
            "group_calibration_gap",
            candidate.max_group_calibration_gap <= gates.max_group_calibration_gap,
            round(candidate.max_group_calibration_gap, 4),
            f"<= {gates.max_group_calibration_gap}",
        ),
    )
    return GateDecision(checks)


def evaluate_pathway_gates(
    candidate: PathwayFigures,
    champion: PathwayFigures | None,
    gates: PathwayGateConfig,
    never_features: tuple[str, ...],
) -> GateDecision:
    """Check a pathway model against its gates and the current champion.

    The policy values are the doubly robust estimates each version's run
    made on its own held-out split.
    """
    forbidden = sorted(set(candidate.features) & (set(never_features) | set(candidate.audit_only)))
    floor = -1.0 if champion is None else champion.policy_value - gates.value_tolerance
    needed = candidate.rnr_value + gates.min_gain_over_rnr
    return GateDecision(
        (
            GateCheck(
                "policy_value_not_worse_than_champion",
                candidate.policy_value >= floor,
                round(candidate.policy_value, 4),
                "no champion"
                if champion is None
                else f">= {floor:.4f} (champion v{champion.version})",
            ),
            GateCheck(
                "beats_needs_score_rule",
                candidate.policy_value >= needed,
                round(candidate.policy_value, 4),
                f">= {needed:.4f} (RNR rule + {gates.min_gain_over_rnr})",
            ),
            GateCheck(
                "no_audit_only_feature", not forbidden, ",".join(forbidden) or "none", "none"
            ),
        )
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
    if isinstance(gates, PathwayGateConfig):
        decision = evaluate_pathway_gates(
            PathwayFigures.from_version(target),
            None if rival is None else PathwayFigures.from_version(rival),
            gates,
            never_features,
        )
    else:
        decision = evaluate_gates(
            CandidateFigures.from_version(target),
            None if rival is None else CandidateFigures.from_version(rival),
            gates,
            never_features,
        )
    audit_gate = next(c for c in decision.checks if c.name == "no_audit_only_feature")
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
            {"gate": c.name, "passed": c.passed, "figure": c.figure, "limit": c.limit}
            for c in decision.checks
        ],
    }
    if force:
        record["reason"] = reason
    client.set_model_version_tag(name, version, TAG_GATES, json.dumps(record))
    client.set_model_version_tag(name, version, "desist.promotion", str(record["decision"]))
    for check in decision.checks:
        client.set_model_version_tag(
            name, version, f"desist.gate.{check.name}", "pass" if check.passed else "fail"
        )
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
