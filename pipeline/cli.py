"""The ``desist`` command: parse arguments, call one job, print a summary.

The subcommands live by concept: :mod:`pipeline.cli_training` (synth, train,
cv, mission), :mod:`pipeline.cli_models` (promote, score),
:mod:`pipeline.cli_service` (serve, keys, audit, outcomes) and
:mod:`pipeline.cli_monitoring` (monitor). Each imports its job lazily so
that ``desist --help`` stays fast and no job's dependencies load for another job.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from data.errors import DesistError
from pipeline.cli_models import add_model_commands
from pipeline.cli_monitoring import add_monitoring_commands
from pipeline.cli_service import add_service_commands
from pipeline.cli_training import add_training_commands


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``desist`` command."""
    parser = argparse.ArgumentParser(
        prog="desist",
        description="Re-offending risk scores and rehabilitation pathways, auditable end to end.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_training_commands(commands)
    add_model_commands(commands)
    add_service_commands(commands)
    add_monitoring_commands(commands)
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
