"""``desist synth``, ``train`` and their printed next steps."""

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


def test_train_then_promote_latest_from_the_command_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(
        'features = ["age", "total_sanctions", "months_offence_free", "drug_misuse"]\n'
        "[dataset]\n"
        'name = "tiny"\n'
        "synthetic = { rows = 3000, seed = 1 }\n"
        "[[models]]\n"
        'family = "scorecard"\n'
        "[calibration_gate]\n"
        "max_debiased_error = 0.2\n"
        "[evaluation]\n"
        "n_bootstrap = 20\n"
    )
    assert main(["train", "risk", "--config", str(config)]) == 0
    summary = capsys.readouterr().out
    assert "registered: desist-risk version 1 (scorecard)" in summary
    assert "mlflow ui --backend-store-uri" in summary
    (hint,) = [line for line in summary.splitlines() if line.strip().startswith("promote:")]
    command = hint.split("desist ", 1)[1].split()
    assert command == ["promote", "risk", "--config", str(config), "--version", "1"]
    assert main(command) == 0  # the printed next step works as printed
    assert "version 1 is now champion" in capsys.readouterr().out


def test_the_pathways_job_prints_its_promote_hint(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pipeline.train_pathways as job
    from pipeline.train_pathways import PathwayTrainResult

    fields = PathwayTrainResult.__dataclass_fields__
    done = {name: None for name in fields} | {
        "run_id": "abc",
        "registered_model": "desist-pathways",
        "version": "4",
        "policy_values": {},
        "recommended_share": 0.5,
        "seconds": 1.0,
    }
    monkeypatch.setattr(job, "train", lambda *a, **k: PathwayTrainResult(**done))
    assert main(["train", "pathways", "--config", "configs/pathways.toml"]) == 0
    printed = capsys.readouterr().out
    assert "promote:    desist promote pathways --config configs/pathways.toml --version 4" in (
        printed
    )
