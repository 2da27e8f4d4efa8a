"""``desist promote`` and ``desist score``: move the champion through its gates, score a file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli_arguments import add_choice, add_group

if TYPE_CHECKING:
    from pipeline.cli_arguments import Commands


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


def _problem(where: tuple[int | str, ...], message: str) -> str:
    """Return one option's problem, named by the option (a rule across options has no name)."""
    return f"{'.'.join(map(str, where))}: {message}" if where else message


def _score(args: argparse.Namespace) -> int:
    # Options and files first, importing nothing heavy: a wrong path is reported in
    # a fraction of a second, not after pandas, scikit-learn and MLflow have loaded.
    from pydantic import ValidationError

    from pipeline.batch_config import BatchScoreConfig, ScoreOptionsError, check_files

    if args.master is not None and args.engine != "spark":
        raise ScoreOptionsError("--master needs --engine spark")
    # The options are named as the config's fields; one not given keeps the config's default.
    given = {name: getattr(args, name, None) for name in BatchScoreConfig.model_fields}
    try:
        config = BatchScoreConfig(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as err:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in err.errors())
        raise ScoreOptionsError(problems) from err
    # Spark's executors read the input, and check it themselves (they may see other paths).
    check_files(config, input_here=args.engine != "spark")

    from pipeline.jobs import to_stderr
    from pipeline.tracking import Tracker

    tracker = Tracker.from_environment()
    if args.engine == "spark":
        from pipeline.spark_scoring import score_file_spark

        # Without --master, score_file_spark's own default (a local Spark) applies.
        where = {"master": args.master} if args.master else {}
        result = score_file_spark(config, tracker=tracker, progress=to_stderr, **where)
    else:
        from pipeline.batch_scoring import score_file

        result = score_file(config, tracker=tracker, progress=to_stderr)
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


def add_model_commands(commands: Commands) -> None:
    """Add ``promote risk|pathways`` and ``score``."""
    promote_kinds = add_group(
        commands, "promote", "move the champion alias, if the gates pass", dest="kind"
    )
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
        dest="model_uri",
        help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH (default: the "
        "champion of --config's registered_model, else models:/desist-risk@champion)",
    )
    score.add_argument("--input", type=Path, required=True, help="assessments, .csv or .parquet")
    score.add_argument("--output", type=Path, required=True, help="scores, .csv or .parquet")
    score.add_argument(
        "--config",
        dest="dataset_config",
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
    add_choice(
        score,
        "--engine",
        ("local", "spark"),
        "local: chunks in this process (default); spark: the same steps on Spark executors",
    )
    score.add_argument(
        "--master",
        help="Spark master URL with --engine spark (default local[2]), e.g. spark://h:7077",
    )
    score.set_defaults(handler=_score)
