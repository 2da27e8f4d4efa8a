from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``DESIST_HOME``, with no store or database URL in the environment to override it."""
    monkeypatch.setenv("DESIST_HOME", str(tmp_path / "home"))
    for variable in ("MLFLOW_TRACKING_URI", "DESIST_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "home"


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


def test_promote_without_models_is_a_clear_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["promote", "risk", "--version", "latest"]) == 2
    assert "no registered versions" in capsys.readouterr().err


def test_keys_and_audit_commands(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from serving.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["keys", "create", "--client", "probation-cms", "--scope", "score"]) == 0
        key = capsys.readouterr().out.strip().splitlines()[-1]
        assert key.startswith("dsk_")
        key_id = key.split("_")[1]
        assert main(["keys", "revoke", "--key-id", key_id]) == 0
        assert "revoked 1 key" in capsys.readouterr().out
        out = tmp_path / "audit.csv"
        assert main(["audit", "export", "--since", "2026-01-01", "--out", str(out)]) == 0
        assert out.read_text().startswith("id,")
    finally:
        get_settings.cache_clear()
