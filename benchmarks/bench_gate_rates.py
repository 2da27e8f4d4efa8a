"""How often the calibration gate (pipeline/calibration_checks.py) passes perfect and bad models.

Simulated cohorts: true log-odds Normal(-0.2, 1) (a base rate near Broward's
45 %), outcomes drawn from them. "Perfect" scores are the true
probabilities; the bad ones are shifted by +0.05 in probability or tempered
(logit x 0.6 or x 1.6). Each setup is 200 draws; a rate's binomial sd is at
most 3.5 points (1.5 at a 95 % rate). "Unadjusted" runs every test at 5 %
with no Bonferroni split, to show why the gate splits its false-alarm rate.

Figures: ``benchmarks/results/gate_rates.json``.

Run: ``PYTHONPATH=$PWD python -m benchmarks.bench_gate_rates`` (about 2 minutes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.common import save
from pipeline.calibration_checks import CalibrationGateConfig, evaluate_calibration_gate

Transform = Callable[[np.ndarray, np.ndarray], np.ndarray]
DRAWS = 200


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _rate(
    config: CalibrationGateConfig,
    sizes: tuple[int, ...],
    transform: Transform | None = None,
    groups: bool = False,
) -> dict[str, object]:
    rng = np.random.default_rng(1)
    passed, failures = [], dict[str, int]()
    for i in range(DRAWS):
        n = sizes[i % len(sizes)]
        logit = rng.normal(-0.2, 1.0, n)
        p = _sigmoid(logit)
        y = (rng.random(n) < p).astype(int)
        scores = p if transform is None else transform(logit, p)
        audited = None
        if groups:  # as Broward's test split: two race groups and both sexes reach 200
            race = np.array(["aa", "c", "h", "o"], dtype=object)
            sex = np.array(["f", "m"], dtype=object)
            audited = {
                "race": rng.choice(race, size=n, p=[0.49, 0.36, 0.09, 0.06]),
                "sex": rng.choice(sex, size=n, p=[0.19, 0.81]),
            }
        result = evaluate_calibration_gate(y, scores, config, audited)
        passed.append(result.passed)
        for check in result.failures():
            failures[check.check] = failures.get(check.check, 0) + 1
    return {"sizes": list(sizes), "draws": DRAWS, "pass_rate": float(np.mean(passed)), **failures}


def main() -> None:
    """Print and save the pass rates."""
    gate = CalibrationGateConfig()
    quick = CalibrationGateConfig(noise_draws=299)
    # Each test at 0.05: three tests overall, fifteen with four groups judged.
    unadjusted = gate.model_construct(**{**gate.model_dump(), "false_alarm_rate": 0.15})
    unadjusted_groups = gate.model_construct(**{**gate.model_dump(), "false_alarm_rate": 0.75})
    shift: Transform = lambda logit, p: np.clip(p + 0.05, 0.0, 1.0)  # noqa: E731
    cool: Transform = lambda logit, p: _sigmoid(0.6 * logit)  # noqa: E731
    hot: Transform = lambda logit, p: _sigmoid(1.6 * logit)  # noqa: E731
    figures = {
        "perfect_1000_2000": _rate(gate, (1000, 1500, 2000)),
        "perfect_1000_2000_unadjusted": _rate(unadjusted, (1000, 1500, 2000)),
        "perfect_1155_groups": _rate(gate, (1155,), groups=True),
        "perfect_1155_groups_unadjusted": _rate(unadjusted_groups, (1155,), groups=True),
        "shift_0.05_5000": _rate(quick, (5000,), shift),
        "temper_0.6_5000": _rate(quick, (5000,), cool),
        "temper_1.6_5000": _rate(quick, (5000,), hot),
        "shift_0.05_1155": _rate(quick, (1155,), shift),
        "temper_0.6_1155": _rate(quick, (1155,), cool),
        "temper_1.6_1155": _rate(quick, (1155,), hot),
    }
    save("gate_rates", figures)


if __name__ == "__main__":
    main()
