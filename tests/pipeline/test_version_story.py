from __future__ import annotations

import numpy as np

from pipeline.calibration_checks import CalibrationGateConfig, evaluate_calibration_gate
from pipeline.version_story import (
    calibration_words,
    decision_words,
    gates_markdown,
    model_description,
    version_description,
)

HEADLINE = {
    "roc_auc": 0.731,
    "roc_auc_ci_low": 0.70,
    "roc_auc_ci_high": 0.76,
    "ece": 0.03,
    "calibration_slope": 1.05,
    "brier": 0.21,
}


def _gate(shift: float = 0.0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    p = rng.beta(2, 4, 2_000)
    y = (rng.random(2_000) < p).astype(int)
    groups = {"sex": np.where(np.arange(2_000) < 5, "female", "male")}
    return evaluate_calibration_gate(
        y, np.clip(p + shift, 0, 1), CalibrationGateConfig(noise_draws=199), groups
    )


def test_a_version_description_says_what_on_what_figures_and_gate() -> None:
    text = version_description(
        family="average",
        dataset="broward",
        digest="f" * 64,
        n_train=4_616,
        n_test=1_155,
        headline=HEADLINE,
        comparisons={"COMPAS decile": (0.04, 0.01, 0.07)},
        gate=_gate(),
        fairness=[
            "False positive rate ratio a / b, desist at p >= 0.5: 1.20 (95% CI 1.01 to 1.41)."
        ],
    )
    assert text.startswith("average model trained on broward (4,616 people")
    # The audit's headline ratio, in the words the card and the report use.
    assert "\n\nFalse positive rate ratio a / b, desist at p >= 0.5: 1.20 (95% CI" in text
    assert "Test ROC AUC 0.731 (95% CI 0.700 to 0.760)" in text
    assert "AUC +0.040 over COMPAS decile" in text
    assert "Too few to judge: sex=female (n = 5)." in text
    assert "Not promoted yet" in text


def test_a_failed_gate_names_its_failures_in_words() -> None:
    words = calibration_words(_gate(shift=0.15))
    assert "FAILED" in words and "Failed: overall" in words


def test_the_model_description_states_purpose_and_the_path_to_champion() -> None:
    text = model_description("desist-risk-broward", "A benchmark: this model estimates. More.")
    assert "A benchmark: this model estimates." in text and "desist promote risk" in text


def test_gates_markdown_lists_each_gate_and_who_forced_it_and_why() -> None:
    record = {
        "decision": "forced",
        "at": "2026-12-02T00:00:00+00:00",
        "by": "ben",
        "champion_before": "1",
        "reason": "rollback drill",
        "checks": [
            {
                "gate": "auc_not_worse_than_champion",
                "passed": False,
                "figure": 0.7,
                "limit": ">= 0.74",
            },
            {
                "gate": "calibration",
                "passed": True,
                "figure": "3 of 3 judged checks pass",
                "limit": "every judged check passes",
                "details": [
                    {
                        "scope": "overall",
                        "check": "slope",
                        "value": "1.02",
                        "limit": "98.33% interval holds 1 or lies in [0.8, 1.25]",
                        "status": "pass",
                        "detail": "interval 0.9 to 1.1",
                    }
                ],
            },
        ],
    }
    text = gates_markdown("desist-risk", "2", record)
    assert "- forced because: rollback drill" in text and "- by: ben" in text
    assert "| auc_not_worse_than_champion | 0.7 | >= 0.74 | FAIL |" in text
    assert "| overall | slope | 1.02 |" in text
    words = decision_words(record)
    assert "forced past failed gates (auc_not_worse_than_champion)" in words
    assert "because: rollback drill" in words
