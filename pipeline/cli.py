"""The ``desist`` command: parse arguments, call one job, print a summary.

Subcommands import their job lazily so that ``desist --help`` stays fast and
no job's dependencies load for another job.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from data.errors import DesistError


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
    synth.add_argument(
        "--referrals",
        choices=("practice", "randomised"),
        default="practice",
        help="historic referrals as practice makes them (confounded) or randomised",
    )
    synth.add_argument(
        "--effect-scale",
        type=float,
        default=1.0,
        help="multiplies every programme's true effect; 0 means nothing works",
    )
    synth.set_defaults(handler=_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``desist`` command; return its exit code."""
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
