"""The ``desist`` command: parse arguments, call one job, print a summary.

Subcommands import their job lazily so that ``desist --help`` stays fast and
no job's dependencies load for another job.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from data.errors import DesistError

if TYPE_CHECKING:
    from pipeline.train_risk import TrainResult


def _synth(args: argparse.Namespace) -> int:
    from data.synthetic import SynthConfig, write_cohort

    config = SynthConfig(
        rows=args.rows,
        seed=args.seed,
        referrals=args.referrals,
        effect_scale=args.effect_scale,
    )
    started = time.perf_counter()
    files = write_cohort(config, args.out)
    seconds = time.perf_counter() - started
    print(
        f"Synthetic cohort: {files.rows:,} people, seed {config.seed}, "
        f"{config.referrals} referrals, 12-month re-offending {files.reoffending_rate:.1%}\n"
        f"  cohort: {files.cohort_path}\n"
        f"  ground truth (never a feature): {files.truth_path}\n"
        f"  took {seconds:.1f} s"
    )
    return 0


def _comparison_lines(result: TrainResult) -> str:
    """Incumbent and baselines on the same test rows, the ECE noise floor, fairness figures."""
    lines = []
    for name, auc in result.comparisons.items():
        if name not in result.auc_gains:
            continue  # desist's own families, printed above
        gain, low, high = result.auc_gains[name]
        lines.append(
            f"  {name:<28} test AUC {auc:.4f}; desist gain {gain:+.4f} "
            f"(95% CI {low:+.4f} to {high:+.4f})"
        )
    if math.isfinite(result.ece_noise_floor):
        lines.append(
            f"  ECE of a perfectly calibrated score on these rows: ~{result.ece_noise_floor:.3f} "
            f"(reaches the observed ECE in {result.ece_noise_p:.0%} of draws); "
            f"debiased calibration error {result.test['ece_debiased']:.3f}"
        )
    # The last summary line is the impossibility note; the report says it in full.
    lines += [f"  fairness: {line}" for line in result.fairness_summary[:-1]]
    return "".join(f"{line}\n" for line in lines)


def _train_risk(args: argparse.Namespace) -> int:
    from pipeline.config import load_risk_config
    from pipeline.jobs import to_stderr
    from pipeline.tracking import Tracker
    from pipeline.train_risk import train

    config = load_risk_config(args.config, data=args.data, threads=args.threads)
    tracker = Tracker.from_environment()
    result = train(config, tracker=tracker, progress=to_stderr)
    test = result.test
    print(
        f"\nRisk model trained in {result.seconds:.0f} s\n"
        f"  run:        {result.run_id} (experiment {config.experiment})\n"
        f"  registered: {result.registered_model} version {result.version} "
        f"({result.selected_family})\n"
        f"  test AUC    {test['roc_auc']:.3f} "
        f"(95% CI {test['roc_auc_ci_low']:.3f}-{test['roc_auc_ci_high']:.3f}), "
        f"ECE {test['ece']:.3f}, Brier {test['brier']:.3f}, "
        f"slope {test['calibration_slope']:.2f}\n"
        f"  largest group calibration gap {result.max_group_calibration_gap:.3f}\n"
        + _calibration_lines(result)
        + "".join(
            f"  {f.family:<10} test AUC {f.test['roc_auc']:.4f}, ECE {f.test['ece']:.4f}, "
            f"fit {f.fit_seconds:.1f} s\n"
            for f in result.families
        )
        + _comparison_lines(result)
        # The config names the registered model and its gates: without it the
        # command would look for the default model's version instead.
        + f"  promote:    desist promote risk --config {args.config} --version {result.version}\n"
        f"  browse:     {tracker.ui_command()}"
    )
    return 0


def _cv_risk(args: argparse.Namespace) -> int:
    from pipeline.config import load_risk_config
    from pipeline.cross_validation import study_features
    from pipeline.jobs import job_threads, to_stderr

    config = load_risk_config(args.config, data=args.data, threads=args.threads)
    with job_threads(config.threads, to_stderr):
        study = study_features(
            config, extra=tuple(args.extra), folds=args.folds, progress=to_stderr
        )
    print(
        f"\n{args.folds}-fold cross-validation on {study.rows:,} rows (test split set aside)\n"
        "  features added in config order; AUC mean (sd) over folds:"
    )
    for row in study.steps.itertuples():
        print(f"  {row.family:<10} + {row.added:<32} {row.roc_auc_mean:.4f} ({row.roc_auc_sd:.4f})")
    how = f", cross-fitted {config.calibration_folds}-fold" if config.cross_fitted else ""
    print(f"  with the config's features and {config.calibration} calibration{how}:")
    for row in study.calibrated.itertuples():
        print(
            f"  {row.family:<10} AUC {row.roc_auc_mean:.4f}, ECE {row.ece_mean:.4f} "
            f"(sd {row.ece_sd:.4f}; a perfectly calibrated score: ~{row.ece_noise_floor:.4f}; "
            f"debiased {row.ece_debiased_mean:.4f})"
        )
    return 0


def _train_pathways(args: argparse.Namespace) -> int:
    from pipeline.config import load_pathway_config
    from pipeline.jobs import to_stderr
    from pipeline.tracking import Tracker
    from pipeline.train_pathways import train

    config = load_pathway_config(args.config, data=args.data, threads=args.threads)
    tracker = Tracker.from_environment()
    result = train(config, tracker=tracker, progress=to_stderr)
    lines = [
        f"\nPathway model trained in {result.seconds:.0f} s",
        f"  run:        {result.run_id} (experiment {config.experiment})",
        f"  registered: {result.registered_model} version {result.version}",
        "  estimated mean reduction in 12-month re-offending on the test split (95% CI):",
    ]
    for name, (mean, low, high) in result.policy_values.items():
        lines.append(f"    {name:<24} {mean:+.3f} ({low:+.3f} to {high:+.3f})")
    lines.append(f"  people with at least one recommendation: {result.recommended_share:.0%}")
    # As the risk job: the config names the registered model and its gates.
    lines.append(
        f"  promote:    desist promote pathways --config {args.config} --version {result.version}"
    )
    lines.append(f"  browse:     {tracker.ui_command()}")
    print("\n".join(lines))
    return 0


def _mission(args: argparse.Namespace) -> int:
    from pipeline.jobs import to_stderr
    from pipeline.mission import run_mission_from_files

    print(run_mission_from_files(args.risk_config, args.pathway_config, args.threads, to_stderr))
    return 0


def _calibration_lines(result: TrainResult) -> str:
    gate = result.calibration_gate
    if gate is None:
        return ""
    failed = ", ".join(f"{c.scope} {c.check}" for c in gate.failures())
    verdict = "passes" if gate.passed else f"FAILS ({failed})"
    judged = sum(c.passed is not None for c in gate.checks)
    return f"  calibration gate on the test split {verdict}: {judged} checks judged\n"


def _promote(args: argparse.Namespace) -> int:
    from data.schema import NEVER_FEATURES
    from pipeline.config import (
        GateConfig,
        PathwayGateConfig,
        PathwayTrainConfig,
        RiskTrainConfig,
        load_pathway_config,
        load_risk_config,
    )
    from pipeline.registry import latest_version, promote
    from pipeline.tracking import Tracker

    config: RiskTrainConfig | PathwayTrainConfig | None
    gates: GateConfig | PathwayGateConfig
    if args.kind == "pathways":
        config = load_pathway_config(args.config) if args.config else None
        gates = config.gates if config else PathwayGateConfig()
        name = config.registered_model if config else "desist-pathways"
    else:
        config = load_risk_config(args.config) if args.config else None
        gates = config.gates if config else GateConfig()
        name = config.registered_model if config else "desist-risk"
    tracker = Tracker.from_environment()
    version = latest_version(tracker, name) if args.version == "latest" else str(args.version)
    result = promote(
        tracker,
        name,
        version,
        gates,
        NEVER_FEATURES,
        force=args.force,
        reason=args.reason,
    )
    for check in result.decision.checks:
        mark = "pass" if check.passed else "FAIL"
        print(f"  [{mark}] {check.name}: {check.figure} (limit {check.limit})")
    if result.promoted:
        how = "forced past failed gates" if result.forced else "all gates passed"
        print(f"{name} version {result.version} is now champion ({how}).")
        return 0
    print(f"{name} version {result.version} was NOT promoted; champion unchanged.")
    if not args.force:
        # The override exists and is audited: say how to use it, and that it needs a reason.
        config_option = f" --config {args.config}" if args.config else ""
        print(
            "  next step: retrain, or override the failed gates on the record with\n"
            f"    desist promote {args.kind}{config_option} --version {result.version} "
            '--force --reason "why these gates may be overridden"'
        )
    return 1


def _score(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from pipeline.batch_scoring import BatchScoreConfig, score_file
    from pipeline.config import ConfigError
    from pipeline.jobs import to_stderr
    from pipeline.tracking import Tracker

    options = {"chunk_rows": args.chunk_rows, "threads": args.threads}
    try:
        config = BatchScoreConfig(
            model_uri=args.model,
            input=args.input,
            output=args.output,
            dataset_config=args.config,
            top_reasons=args.top_reasons,
            allow_unverified=args.allow_unverified,
            **{name: value for name, value in options.items() if value is not None},
        )
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"desist score: {problems}") from err
    result = score_file(config, tracker=Tracker.from_environment(), progress=to_stderr)
    model = result.model
    check = "digest verified" if model.verified else "UNVERIFIED: never registered, no digest"
    bands = ", ".join(f"{name} {count:,}" for name, count in result.band_counts.items())
    print(
        f"Model {model.label} ({check}: {model.digest})\n"
        f"  Scored {result.rows_scored:,} of {result.rows_read:,} rows "
        f"in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s)\n"
        f"  bands:    {bands} (cut-offs {', '.join(f'{c:.0%}' for c in model.bands.cutoffs)})\n"
        f"  output:   {result.output}\n"
        f"  rejected: {result.rows_rejected:,} rows ({result.violations:,} violations) "
        f"in {result.rejects}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from serving.commands import serve

    print(f"desist scoring service on http://{args.host}:{args.port} (docs at /docs)")
    serve(args.host, args.port, args.workers)
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from serving.commands import create_key

    key = create_key(args.client, args.scope)
    print(f"API key for {args.client} (scope {args.scope}); it is shown once, store it now:\n{key}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from serving.commands import revoke_key

    count = revoke_key(key_id=args.key_id, client=args.client)
    print(f"revoked {count} key(s); a running service refuses them within 30 s")
    return 0


def _audit_export(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from serving.commands import export_audit

    since = None
    if args.since:
        since = datetime.fromisoformat(args.since)
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    rows = export_audit(since, args.out, kind=args.kind)
    print(f"wrote {rows:,} {args.kind} audit rows to {args.out}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_threads(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--threads",
        type=_positive,
        help="threads each fit and prediction may use; overrides the config's "
        "(default: the idle cores)",
    )


def _add_choice(
    parser: argparse.ArgumentParser, flag: str, choices: tuple[str, ...], help_text: str
) -> None:
    """Add option ``flag``, taking one of ``choices`` and the first by default."""
    parser.add_argument(flag, choices=choices, default=choices[0], help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``desist`` command."""
    parser = argparse.ArgumentParser(
        prog="desist",
        description="Re-offending risk scores and rehabilitation pathways, auditable end to end.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser("synth", help="generate a synthetic IOM cohort")
    synth.add_argument("--rows", type=int, default=20_000, help="people (default 20,000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet")
    _add_choice(
        synth,
        "--referrals",
        ("practice", "randomised"),
        "historic referrals as practice makes them (confounded) or randomised",
    )
    synth.add_argument(
        "--effect-scale",
        type=float,
        default=1.0,
        help="multiplies every programme's true effect; 0 means nothing works",
    )
    synth.set_defaults(handler=_synth)

    train = commands.add_parser("train", help="train a model from a config")
    train_kinds = train.add_subparsers(dest="kind", required=True, metavar="KIND")
    risk = train_kinds.add_parser("risk", help="re-offending risk model")
    risk.add_argument(
        "--config", type=Path, required=True, help="TOML config, e.g. configs/synthetic.toml"
    )
    risk.add_argument("--data", type=Path, help="dataset file; overrides the config's dataset")
    _add_threads(risk)
    risk.set_defaults(handler=_train_risk)
    pathways = train_kinds.add_parser("pathways", help="pathway-effect (recommendation) model")
    pathways.add_argument(
        "--config", type=Path, required=True, help="TOML, e.g. configs/pathways.toml"
    )
    pathways.add_argument("--data", type=Path, help="dataset file; overrides the config's dataset")
    _add_threads(pathways)
    pathways.set_defaults(handler=_train_pathways)

    mission = commands.add_parser(
        "mission",
        help="the whole mission: train and promote both models, serve, score, audit, report",
    )
    for kind, default in (("risk", "synthetic.toml"), ("pathway", "pathways.toml")):
        mission.add_argument(
            f"--{kind}-config", type=Path, default=Path("configs", default), help=f"{kind} TOML"
        )
    _add_threads(mission)
    mission.set_defaults(handler=_mission)

    cv = commands.add_parser("cv", help="cross-validate feature choices without the test split")
    cv_kinds = cv.add_subparsers(dest="kind", required=True, metavar="KIND")
    cv_risk = cv_kinds.add_parser("risk", help="nested feature sets of a risk config")
    cv_risk.add_argument("--config", type=Path, required=True, help="TOML risk config")
    cv_risk.add_argument("--data", type=Path, help="dataset file; overrides the config's dataset")
    cv_risk.add_argument("--folds", type=int, default=5, help="folds (default 5)")
    cv_risk.add_argument(
        "--extra", nargs="*", default=[], help="candidate features tried after the config's"
    )
    _add_threads(cv_risk)
    cv_risk.set_defaults(handler=_cv_risk)

    promote = commands.add_parser("promote", help="move the champion alias, if the gates pass")
    promote_kinds = promote.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, model in (("risk", "desist-risk"), ("pathways", "desist-pathways")):
        promote_kind = promote_kinds.add_parser(kind, help=f"promote a {model} version")
        promote_kind.add_argument(
            "--version", required=True, help="registered version number, or 'latest'"
        )
        promote_kind.add_argument("--config", type=Path, help="take the gates from this config")
        promote_kind.add_argument("--force", action="store_true", help="override failed gates")
        promote_kind.add_argument(
            "--reason", help="why the gates are overridden (needed with --force)"
        )
        promote_kind.set_defaults(handler=_promote)

    score = commands.add_parser(
        "score", help="score a CSV or Parquet file: probability, band and reasons per row"
    )
    score.add_argument(
        "--model",
        help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH (default: the "
        "champion of --config's registered_model, else models:/desist-risk@champion)",
    )
    score.add_argument("--input", type=Path, required=True, help="assessments, .csv or .parquet")
    score.add_argument("--output", type=Path, required=True, help="scores, .csv or .parquet")
    score.add_argument(
        "--config",
        type=Path,
        help="config whose [adapter] table maps the source columns; a risk config also names "
        "the model to score with and the features it must use (another model's are refused)",
    )
    score.add_argument("--chunk-rows", type=int, help="rows per chunk (default 100,000)")
    score.add_argument("--top-reasons", type=int, default=3, help="reasons per row (default 3)")
    score.add_argument("--threads", type=int, help="threads sharing the rows (default: CPUs)")
    score.add_argument(
        "--allow-unverified",
        action="store_true",
        help="score with a runs:/ model that was never registered (no digest to check)",
    )
    score.set_defaults(handler=_score)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP scoring service",
        description="Run the scoring service (API docs at /docs and /redoc). Everything "
        "else is read from DESIST_* environment variables: DESIST_MODEL_NAME and "
        "DESIST_MODEL_ALIAS (the versions served), DESIST_TRACKING_URI (the registry), "
        "DESIST_DATABASE_URL (API keys and audit log); see serving/settings.py.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, each with its own copy of the model (default 1)",
    )
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="manage API keys of case systems")
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_actions.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--client", required=True, help="name of the calling system")
    create.add_argument("--scope", choices=("score", "admin"), required=True)
    create.set_defaults(handler=_keys_create)
    revoke = key_actions.add_parser("revoke", help="revoke a key, or all keys of a client")
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--key-id", help="the key id: the 12 hex digits after dsk_")
    target.add_argument("--client", help="revoke every active key of this client")
    revoke.set_defaults(handler=_keys_revoke)

    audit = commands.add_parser("audit", help="the audit log of served scores")
    audit_actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = audit_actions.add_parser("export", help="write audit rows to CSV")
    export.add_argument("--since", help="ISO date or time (UTC if no zone), e.g. 2026-11-01")
    export.add_argument("--out", type=Path, required=True, help="CSV file to write")
    _add_choice(
        export,
        "--kind",
        ("scores", "recommendations"),
        "which audit log: risk scores (default) or pathway recommendations",
    )
    export.set_defaults(handler=_audit_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``desist`` command; return its exit code."""
    # desist runs on closed networks: MLflow must not try to send usage telemetry.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # Registering downloads the logged model to digest it: MLflow drew a progress bar
    # of seven tiny files across the job's own progress lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except DesistError as err:
        print(f"desist {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
