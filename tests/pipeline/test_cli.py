from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main


def test_synth_writes_a_cohort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cohort.csv"
    assert main(["synth", "--rows", "250", "--seed", "4", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 250
    assert (tmp_path / "cohort.truth.csv").is_file()
    printed = capsys.readouterr().out
    assert "250 people" in printed and "seed 4" in printed


def test_domain_errors_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["synth", "--rows", "10", "--out", str(tmp_path / "c.xlsx")]) == 2
    assert "unknown file type" in capsys.readouterr().err
