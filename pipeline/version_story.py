"""What a registered version says in words: its description, the model's, the gate decision.

A reviewer opening the registry reads these first, before any tag or table:
the registered model's description (what it is and how versions get there),
each version's description (what, trained on what, headline figures, the
calibration gate and, once promoted or refused, the decision) and
``gates.md``, the promotion record in words (each gate, its figure, its
limit, pass or fail, who forced it and why), logged to the version's source
run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlflow.entities.model_registry import ModelVersion

from pipeline.calibration_checks import CalibrationGateResult
from pipeline.tracking import Tracker

#: Where the promotion record in words is logged, in the version's source run.
GATES_ARTIFACT = "gates.md"
_NOT_YET = "Not promoted yet: `desist promote risk` records the decision here."


def model_description(name: str, intended_use: str) -> str:
    """Return the registered model's description: what it is, how a version becomes champion."""
    purpose = (
        intended_use.split(". ")[0].rstrip(".") + "."
        if intended_use
        else (
            "Estimates the probability that a person re-offends, to support offender-management "
            "practitioners; it does not replace their judgement and is not for sentencing."
        )
    )
    return (
        f"{name}: a re-offending risk model trained by desist. {purpose} "
        "Each version is registered by `desist train risk --config <its config>` with its "
        "model card (tag desist.model_card), its test figures and its calibration gate record; "
        "the `champion` alias, the served version, moves only through "
        "`desist promote risk --config <its config>`, which writes gates.md and the decision "
        "on the version."
    )


def version_description(
    *,
    family: str,
    dataset: str,
    digest: str,
    n_train: int,
    n_test: int,
    headline: Mapping[str, float],
    comparisons: Mapping[str, tuple[float, float, float]],
    gate: CalibrationGateResult,
    fairness: Sequence[str] = (),
) -> str:
    """Return a version's description: what, trained on what, headline figures, gate in words.

    ``comparisons`` maps another score's name to desist's AUC gain over it
    (gain, 95 % low, high) on the same test rows; ``fairness`` holds the
    audit's headline ratios in words, as the card and the report state them.
    """
    lines = [
        f"{family} model trained on {dataset} ({n_train:,} people; data sha256 {digest[:12]}), "
        f"tested on {n_test:,} people it never saw.",
        f"Test ROC AUC {headline['roc_auc']:.3f} (95% CI {headline['roc_auc_ci_low']:.3f} to "
        f"{headline['roc_auc_ci_high']:.3f}); ECE {headline['ece']:.3f}, calibration slope "
        f"{headline['calibration_slope']:.2f}, Brier {headline['brier']:.3f}.",
    ]
    for other, (gain, low, high) in comparisons.items():
        lines.append(
            f"AUC {gain:+.3f} over {other} on the same test people (95% CI {low:+.3f} to "
            f"{high:+.3f})."
        )
    lines += fairness
    lines.append(calibration_words(gate))
    lines.append(_NOT_YET)
    return "\n\n".join(lines)


def calibration_words(gate: CalibrationGateResult) -> str:
    """Return the calibration gate's decision in one or two sentences."""
    judged = [c for c in gate.checks if c.passed is not None]
    scopes = sorted({c.scope for c in judged})
    small = [c for c in gate.checks if c.check == "group_size"]
    words = (
        f"Calibration gate on the test split: {'passed' if gate.passed else 'FAILED'} "
        f"({sum(bool(c.passed) for c in judged)} of {len(judged)} checks pass, in "
        f"{len(scopes)} scopes: {', '.join(scopes)}; family-wise false-alarm rate "
        f"{gate.false_alarm_rate:g})."
    )
    failed = gate.failures()
    if failed:
        words += (
            " Failed: "
            + "; ".join(f"{c.scope} {c.check} {c.value:.3g} (limit {c.limit})" for c in failed)
            + "."
        )
    if small:
        words += " Too few to judge: " + ", ".join(f"{c.scope} (n = {c.n})" for c in small) + "."
    return words


def decision_words(record: Mapping[str, object]) -> str:
    """Return a promotion record's decision in one sentence (for the version description)."""
    decision = str(record["decision"])
    checks = record.get("checks", [])
    failed = (
        [str(c["gate"]) for c in checks if isinstance(c, dict) and not c.get("passed")]
        if isinstance(checks, list)
        else []
    )
    sentence = f"Promotion {record['at']} by {record['by']}: {decision}"
    if decision == "promoted":
        sentence += " (every gate passed); this version is the champion."
    elif decision == "forced":
        sentence += f" past failed gates ({', '.join(failed)}), because: {record.get('reason')}."
    else:
        sentence += f": failed {', '.join(failed)}; the champion is unchanged."
    return sentence + f" Each gate in words: {GATES_ARTIFACT} in the source run."


def gates_markdown(name: str, version: str, record: Mapping[str, object]) -> str:
    """Return the promotion record in words: each gate, figure, limit, pass or fail, who and why."""
    lines = [
        f"# Promotion gates: {name} version {version}",
        "",
        f"- decision: **{record['decision']}**",
        f"- at: {record['at']}",
        f"- by: {record['by']}",
        f"- champion before: {record.get('champion_before') or 'none'}",
    ]
    if record.get("reason"):
        lines.append(f"- forced because: {record['reason']}")
    lines += ["", "| gate | figure | limit | result |", "|---|---|---|---|"]
    checks = record.get("checks", [])
    checks = checks if isinstance(checks, list) else []
    for c in checks:
        result = "pass" if c["passed"] else "FAIL"
        lines.append(f"| {c['gate']} | {_cell(c['figure'])} | {_cell(c['limit'])} | {result} |")
    for c in checks:
        details: Sequence[Mapping[str, str]] = c.get("details", [])
        if not details:
            continue
        lines += [
            "",
            f"## {c['gate']}: every figure",
            "",
            "| scope | check | figure | limit | result | detail |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {d['scope']} | {d['check']} | {d['value']} | {_cell(d['limit'])} | "
            f"{d['status']} | {_cell(d.get('detail', ''))} |"
            for d in details
        ]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def record_decision(tracker: Tracker, target: ModelVersion, record: Mapping[str, object]) -> None:
    """Log ``gates.md`` to the version's source run; add the decision to its description."""
    client = tracker.client()
    name, version = target.name, str(target.version)
    if target.run_id:
        client.log_text(target.run_id, gates_markdown(name, version, record), GATES_ARTIFACT)
    # The training summary stays; each decision replaces the "not promoted yet" line or follows it.
    summary = (target.description or "").replace(_NOT_YET, "").rstrip()
    client.update_model_version(
        name, version, description=(summary + "\n\n" + decision_words(record)).strip()
    )
