"""Outcome monitoring on simulated deployments: false alerts, detection, and time.

A scorecard is trained on one synthetic cohort (30,000 people, seed 101) and
its training reference made as registration would. Then, for each of
``--cohorts`` later cohorts of ``--rows`` people (seeds the training never
used), per setting:

- ``unshifted``: the same population;
- ``reoffending_plus_5_points``: true re-offending log-odds raised so the
  rate is 5 points higher, assessments unchanged;
- ``age_plus_0_3_sd``: ages tilted so the mean is 0.3 sd higher;
- ``drug_need_plus_10_points``: latent drug need 10 points more prevalent;

the later cohort is scored, its decisions (8 % overrides) and outcomes
simulated from the truth, and :func:`pipeline.monitoring.assess` run with
``configs/monitoring.toml``. A cohort "alerts" when any check alerts; for a
shift, "named" counts the cohorts whose alerts name what moved (the
calibration for the rate shift, the feature for the others).

Finally the full job, :func:`pipeline.monitoring.monitor` (MLflow run,
HTML report, plots), is timed on ``--large`` scored people with outcomes, on
an MLflow store that exists already (a new store's schema set-up is not timed).

Figures: ``benchmarks/results/monitoring.json``.

Run: ``.venv/bin/python -m benchmarks.bench_monitoring [--cohorts 20] [--rows 5000]
[--large 100000] [--extra-unshifted 0]`` (about 5 minutes on a busy 2-core machine;
each extra unshifted cohort about 3 s more).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import save
from data.shifts import ShiftConfig
from pipeline.deployment_simulation import (
    monitor_simulated,
    simulate_monitoring_inputs,
    train_simulated_model,
)
from pipeline.monitoring_config import load_monitoring_config
from pipeline.tracking import Tracker

REPO = Path(__file__).parents[1]
CONFIG = REPO / "configs" / "monitoring.toml"
SETTINGS: dict[str, tuple[ShiftConfig, tuple[str, ...]]] = {
    "unshifted": (ShiftConfig(), ()),
    "reoffending_plus_5_points": (ShiftConfig(reoffending_points=0.05), ("calibration",)),
    "age_plus_0_3_sd": (ShiftConfig(age_shift_sd=0.3), ("drift age",)),
    "drug_need_plus_10_points": (ShiftConfig(drug_need_points=0.10), ("drift drug_misuse",)),
}
#: Later cohorts use seeds from here on; training used 101.
FIRST_SEED = 5_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=20)
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument(
        "--extra-unshifted",
        type=int,
        default=0,
        help="more unshifted cohorts (later seeds) to estimate the false alarm rate per run",
    )
    args = parser.parse_args()
    config = load_monitoring_config(CONFIG)
    trained = train_simulated_model()
    figures: dict[str, object] = {
        "rows_per_cohort": args.rows,
        "config": str(CONFIG.relative_to(REPO)),
        "reference_test_auc": trained.reference.roc_auc,
    }
    detected: dict[str, dict[str, object]] = {}
    for name, (shift, expected) in SETTINGS.items():
        alerted, named, seconds = 0, 0, []
        alerting_checks: Counter[str] = Counter()
        for i in range(args.cohorts):
            inputs = simulate_monitoring_inputs(trained, shift, rows=args.rows, seed=FIRST_SEED + i)
            started = time.perf_counter()
            result = monitor_simulated(config, trained, inputs)
            seconds.append(time.perf_counter() - started)
            alerted += result.alerted
            named += any(a.startswith(expected) for a in result.alerts) if expected else 0
            alerting_checks.update(
                f"{k} {s}"
                for k, s in result.checks.loc[
                    result.checks["alert"], ["kind", "subject"]
                ].itertuples(index=False)
            )
            print(f"{name} cohort {i + 1}: alerted={result.alerted} {result.alerts[:3]}")
        row: dict[str, object] = {
            "cohorts_alerted": alerted,
            "of": args.cohorts,
            "alerting_checks": dict(alerting_checks.most_common(8)),
            "assess_seconds_mean": round(sum(seconds) / len(seconds), 3),
        }
        if expected:
            row["cohorts_naming_what_moved"] = named
        detected[name] = row
    figures["false_alerts"] = detected["unshifted"]["cohorts_alerted"]
    figures["unshifted_cohorts"] = args.cohorts
    figures["detected"] = {k: v for k, v in detected.items() if k != "unshifted"}
    figures["unshifted"] = detected["unshifted"]

    if args.extra_unshifted:
        extra = Counter[str]()
        alerted = 0
        for i in range(args.extra_unshifted):
            inputs = simulate_monitoring_inputs(
                trained, ShiftConfig(), rows=args.rows, seed=FIRST_SEED + 1_000 + i
            )
            result = monitor_simulated(config, trained, inputs)
            alerted += result.alerted
            extra.update(result.alerts)
        figures["unshifted_extended"] = {
            "cohorts": args.extra_unshifted,
            "alerted": alerted,
            "configured_false_alarm_rate": config.false_alarm_rate,
            "alerts": dict(extra),
        }

    inputs = simulate_monitoring_inputs(trained, ShiftConfig(), rows=args.large, seed=99)
    with tempfile.TemporaryDirectory() as home:
        tracker = Tracker.for_home(Path(home))
        # Creating a new SQLite store (its schema migrations) is set-up, not monitoring.
        tracker.experiment_id(config.experiment)
        started = time.perf_counter()
        result = monitor_simulated(config, trained, inputs, tracker=tracker)
        total = time.perf_counter() - started
    started = time.perf_counter()
    monitor_simulated(config, trained, inputs)
    checks_only = time.perf_counter() - started
    figures["large"] = {
        "scored_people": result.n_scored,
        "matured": result.n_matured,
        "decided": result.n_decided,
        "monitor_seconds": round(total, 2),
        "checks_only_seconds": round(checks_only, 2),
        "alerted": result.alerted,
        "alerts": result.alerts,
        "target_seconds": 30,
    }
    save("monitoring", figures)


if __name__ == "__main__":
    main()
