"""The ``desist`` command as a whole: exit codes, environment, every command group."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import build_parser, main


def test_domain_errors_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["synth", "--rows", "10", "--out", str(tmp_path / "c.xlsx")]) == 2
    assert "unknown file type" in capsys.readouterr().err


def test_the_command_turns_off_mlflows_download_progress_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    assert main(["synth", "--rows", "10", "--out", str(tmp_path / "c.csv")]) == 0
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"


def test_every_command_group_is_on_the_parser() -> None:
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(commands.choices) == {  # type: ignore[arg-type]
        "synth",
        "train",
        "mission",
        "cv",
        "promote",
        "score",
        "serve",
        "keys",
        "audit",
        "outcomes",
        "monitor",
        "allocate",
    }
