"""Argument types and option groups the ``desist`` subcommands share.

Each command group (:mod:`pipeline.cli_training`, :mod:`pipeline.cli_models`,
:mod:`pipeline.cli_service`, :mod:`pipeline.cli_monitoring`) adds its
subcommands with these, so an option such as ``--threads`` or ``--since``
reads and is documented the same way in every command.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def positive(text: str) -> int:
    """Parse a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def utc_time(text: str) -> datetime:
    """Parse an ISO date or time; one without a zone is UTC, as the audit log records."""
    try:
        found = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from err
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def add_threads(command: argparse.ArgumentParser) -> None:
    """Add ``--threads``, the thread budget of a job."""
    command.add_argument(
        "--threads",
        type=positive,
        help="threads each fit and prediction may use; overrides the config's "
        "(default: the idle cores)",
    )


def add_job_inputs(command: argparse.ArgumentParser, config_help: str) -> None:
    """Add a training job's ``--config`` (required), ``--data`` and ``--threads``."""
    command.add_argument("--config", type=Path, required=True, help=config_help)
    command.add_argument("--data", type=Path, help="dataset file; overrides the config's dataset")
    add_threads(command)


def add_choice(
    parser: argparse.ArgumentParser, flag: str, choices: tuple[str, ...], help_text: str
) -> None:
    """Add option ``flag``, taking one of ``choices`` and the first by default."""
    parser.add_argument(flag, choices=choices, default=choices[0], help=help_text)


def add_group(commands: Commands, name: str, help_text: str, dest: str = "action") -> Commands:
    """Add command ``name`` whose own subcommands are chosen by ``dest``; return them."""
    group = commands.add_parser(name, help=help_text)
    return group.add_subparsers(dest=dest, required=True, metavar=dest.upper())
