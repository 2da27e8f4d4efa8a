"""``desist monitor``: is a registered version still calibrated for the people it now scores."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli_arguments import utc_time

if TYPE_CHECKING:
    from pipeline.cli_arguments import Commands
    from pipeline.monitoring import MonitorResult

HELP = "check a registered version against what it served: drift, outcomes, overrides"
DESCRIPTION = (
    "Read the scores a version served in a period, with the practitioners' decisions and the "
    "imported outcomes, from the service's database (DESIST_* settings); check them against "
    "the training reference stored with the version; log a monitoring run to MLflow linked to "
    "the version and write its HTML report. Exit codes: 0, or 1 with --fail-on-alert when a "
    "check alerts; 2 on errors."
)
#: Features named in the summary as the largest movers, alerting or not.
MOVERS_SHOWN = 3


def summary(result: MonitorResult, report: Path | None = None) -> str:
    """Return the monitoring run in a few lines: stage, alerts naming what moved, where it is."""
    from pipeline.drift import SCORE

    if result.evaluation is None:
        stage = f"drift only ({result.n_matured:,} matured outcomes: too few to check outcomes)"
    else:
        auc = result.evaluation.headline["roc_auc"]
        stage = f"with outcomes ({result.n_matured:,} matured; AUC {auc:.3f})"
    lines = [
        f"Monitoring {result.model} version {result.version}: {result.n_scored:,} scores, "
        f"{result.n_decided:,} with a decision",
        f"  stage:  {stage}",
    ]
    inputs = result.drift[result.drift["feature"] != SCORE]
    movers = inputs.assign(psi=inputs["psi"].astype(float)).nlargest(MOVERS_SHOWN, "psi")
    if len(movers):
        moved = ", ".join(f"{r.feature} {r.psi:.3f}" for r in movers.itertuples(index=False))
        lines.append(f"  largest input drift (PSI): {moved}")
    if result.alerted:
        lines.append(f"  ALERT: {len(result.alerts)} check(s) alerted")
        lines += [f"    - {alert}" for alert in result.alerts]
    else:
        tested = int(result.checks["p_value"].notna().sum())
        lines.append(f"  no alert ({tested} checks tested, each at level {result.level:.2g})")
    lines.append(f"  run:    {result.run_id}")
    if report is not None:
        lines.append(f"  report: {report}")
    return "\n".join(lines)


def _monitor(args: argparse.Namespace) -> int:
    from pipeline.monitoring_config import MonitoringConfig, load_monitoring_config
    from pipeline.monitoring_job import MonitoringScope, run_monitoring, write_report
    from pipeline.tracking import Tracker, desist_home

    config = load_monitoring_config(args.config) if args.config else MonitoringConfig()
    if args.model:
        config = config.model_copy(update={"registered_model": args.model})
    version = str(args.version)
    default_report = desist_home() / "monitoring" / f"{config.registered_model}-v{version}.html"
    report = args.report or default_report
    tracker = Tracker.from_environment()
    scope = MonitoringScope(version, args.since, args.until, args.as_of, args.assessments)
    result = run_monitoring(config, scope, tracker=tracker)
    write_report(tracker, result, report)
    print(summary(result, report) + f"\n  browse: {tracker.ui_command()}")
    return result.exit_code(fail_on_alert=args.fail_on_alert)


def add_monitoring_commands(commands: Commands) -> None:
    """Add ``monitor``."""
    monitor = commands.add_parser("monitor", help=HELP, description=DESCRIPTION)
    monitor.add_argument("--model", help="registered model (default: the config's, desist-risk)")
    monitor.add_argument("--version", required=True, help="registered version number")
    monitor.add_argument("--since", type=utc_time, help="first score time (ISO; UTC if no zone)")
    monitor.add_argument("--until", type=utc_time, help="scores before this time (ISO)")
    monitor.add_argument(
        "--as-of",
        type=utc_time,
        help="the day monitoring looks from (default: the latest follow-up end imported)",
    )
    monitor.add_argument(
        "--config", type=Path, help="monitoring TOML, e.g. configs/monitoring.toml (thresholds)"
    )
    monitor.add_argument(
        "--assessments",
        type=Path,
        help="the assessments as sent (CSV or Parquet), for input drift and group checks: the "
        "audit log keeps only their digest",
    )
    monitor.add_argument(
        "--report", type=Path, help="HTML report file (default DESIST_HOME/monitoring/...)"
    )
    monitor.add_argument(
        "--fail-on-alert", action="store_true", help="exit 1 when any check alerts"
    )
    monitor.set_defaults(handler=_monitor)
