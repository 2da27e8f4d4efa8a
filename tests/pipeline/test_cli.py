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


def test_a_refused_promotion_prints_the_override_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DESIST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = tmp_path / "strict.toml"
    config.write_text(
        'features = ["age", "total_sanctions"]\n'
        '[dataset]\nname = "tiny"\nsynthetic = { rows = 3000, seed = 1 }\n'
        '[[models]]\nfamily = "scorecard"\n'
        # Limits this seeded model does not meet: each calibration test at a level of
        # about 0.16, and a ceiling of 0.000001 on the debiased calibration error.
        "[calibration_gate]\nfalse_alarm_rate = 0.49\n"
        "max_debiased_error = 0.000001\nnoise_draws = 99\n"
        "[evaluation]\nn_bootstrap = 20\n"
    )
    assert main(["train", "risk", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["promote", "risk", "--config", str(config), "--version", "1"]) == 1
    printed = capsys.readouterr().out
    assert "was NOT promoted" in printed
    (step,) = [line for line in printed.splitlines() if "--force --reason" in line]
    assert step.strip().startswith(f"desist promote risk --config {config} --version 1 --force")


def test_the_pathways_job_prints_its_promote_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pipeline.train_pathways as job
    from pipeline.train_pathways import PathwayTrainResult

    monkeypatch.setenv("DESIST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
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


def test_serve_help_documents_every_option() -> None:
    from pipeline.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    serve = commands.choices["serve"]  # type: ignore[index]
    options = [a for a in serve._actions if a.dest != "help"]
    assert {a.dest for a in options} == {"host", "port", "workers"}
    assert all(a.help and "default" in a.help for a in options)
    assert "DESIST_" in (serve.description or "")


def test_the_command_turns_off_mlflows_download_progress_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    assert main(["synth", "--rows", "10", "--out", str(tmp_path / "c.csv")]) == 0
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
