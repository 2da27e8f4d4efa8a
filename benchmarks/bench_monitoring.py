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

Then the full job, :func:`pipeline.monitoring.monitor` (MLflow run,
HTML report, plots), is timed on ``--large`` scored people with outcomes, on
an MLflow store that exists already (a new store's schema set-up is not timed).

Last, ``--service-cohorts`` cohorts per setting go through the service as a
deployment would (``through_service``): the risk job trains a scorecard on
30,000 synthetic people (seed 101) and registers it with its training
reference, it is promoted, the app starts in process on an SQLite audit
database; each later cohort is sent to ``POST /v1/risk-scores``, a quarter of
its scores get a decision through ``POST /v1/decisions`` (8 % overrides), its
truth file is imported as ``desist outcomes import`` does, and ``desist
monitor``'s job (:func:`pipeline.monitoring_job.run_monitoring`) checks that
cohort's period with its assessments file, logging each run to MLflow.

Figures: ``benchmarks/results/monitoring.json`` (``--service-only``: the service
section alone, in ``monitoring_service.json``).

Run: ``.venv/bin/python -m benchmarks.bench_monitoring [--cohorts 20] [--rows 5000]
[--large 100000] [--extra-unshifted 0] [--service-cohorts 3] [--service-only]``
(about 5 minutes on a busy 2-core machine, plus about a minute per cohort through
the service; each extra unshifted cohort about 3 s more).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import save
from benchmarks.support.configs import small_config
from data.shifts import ShiftConfig
from data.synthetic_world import SynthConfig
from models.risk import ScorecardSettings
from pipeline.config import DatasetConfig, GateConfig
from pipeline.deployment_simulation import (
    deploy_through_service,
    monitor_simulated,
    simulate_monitoring_inputs,
    train_simulated_model,
)
from pipeline.monitoring_config import MonitoringConfig, load_monitoring_config
from pipeline.monitoring_job import MonitoringScope, run_monitoring
from pipeline.registry import promote
from pipeline.tracking import Tracker
from pipeline.train_risk import train

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


def through_service(config: MonitoringConfig, cohorts: int, rows: int) -> dict[str, object]:
    """Deploy ``cohorts`` later cohorts per setting through the service and monitor each period."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.commands import create_key, import_outcomes
    from serving.settings import Settings

    # The targets: no false alert, and the rate and age shifts alerted.
    targets = {k: v for k, v in SETTINGS.items() if k != "drug_need_plus_10_points"}
    found: dict[str, object] = {"rows_per_cohort": rows, "cohorts_per_setting": cohorts}
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        tracker = Tracker.for_home(home)
        dataset = DatasetConfig(name="synthetic-30k", synthetic=SynthConfig(rows=30_000, seed=101))
        trained = train(
            small_config(dataset=dataset, models=(ScorecardSettings(),)), tracker=tracker
        )
        gates = GateConfig(auc_tolerance=1.0)
        assert promote(tracker, trained.registered_model, trained.version, gates, ()).promoted
        settings = Settings(home=home, rate_limit_per_second=0, unverified_per_second=0)
        key = create_key("case-system", "score", settings=settings)
        with TestClient(create_app(settings)) as client:
            for name, (shift, expected) in targets.items():
                alerted, named, seconds = 0, 0, []
                for i in range(cohorts):
                    since = datetime.now(UTC)
                    started = time.perf_counter()
                    served = deploy_through_service(
                        client, key, shift, rows=rows, seed=FIRST_SEED + 2_000 + i, folder=home
                    )
                    scope = MonitoringScope(
                        trained.version, since, datetime.now(UTC), None, served.assessments
                    )
                    import_outcomes(served.outcomes, settings)
                    result = run_monitoring(config, scope, tracker=tracker, settings=settings)
                    seconds.append(time.perf_counter() - started)
                    alerted += result.alerted
                    named += any(a.startswith(expected) for a in result.alerts) if expected else 0
                    print(
                        f"service {name} cohort {i + 1}: alerted={result.alerted} "
                        f"{result.alerts[:3]} ({result.n_decided} decided)"
                    )
                found[name] = {
                    "cohorts_alerted": alerted,
                    "of": cohorts,
                    "seconds_per_cohort_mean": round(sum(seconds) / len(seconds), 1),
                    **({"cohorts_naming_what_moved": named} if expected else {}),
                }
    return found


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
    parser.add_argument(
        "--service-cohorts",
        type=int,
        default=3,
        help="cohorts per setting deployed through the service (0: none)",
    )
    parser.add_argument(
        "--service-only",
        action="store_true",
        help="only the section through the service (saved as monitoring_service.json)",
    )
    args = parser.parse_args()
    config = load_monitoring_config(CONFIG)
    if args.service_only:
        save("monitoring_service", through_service(config, args.service_cohorts, args.rows))
        return
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
    if args.service_cohorts:
        figures["through_service"] = through_service(config, args.service_cohorts, args.rows)
    save("monitoring", figures)


if __name__ == "__main__":
    main()
