"""``desist promote``: clear errors, and the override step printed when gates fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main

#: A config whose seeded model fails its calibration gate.
STRICT_CONFIG = (
    'features = ["age", "total_sanctions"]\n'
    '[dataset]\nname = "tiny"\nsynthetic = { rows = 3000, seed = 1 }\n'
    '[[models]]\nfamily = "scorecard"\n'
    # Limits this seeded model does not meet: each calibration test at a level of
    # about 0.16, and a ceiling of 0.000001 on the debiased calibration error.
    "[calibration_gate]\nfalse_alarm_rate = 0.49\n"
    "max_debiased_error = 0.000001\nnoise_draws = 99\n"
    "[evaluation]\nn_bootstrap = 20\n"
)


def test_promote_without_models_is_a_clear_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["promote", "risk", "--version", "latest"]) == 2
    assert "no registered versions" in capsys.readouterr().err


def test_a_refused_promotion_prints_the_override_step(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "strict.toml"
    config.write_text(STRICT_CONFIG)
    assert main(["train", "risk", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["promote", "risk", "--config", str(config), "--version", "1"]) == 1
    printed = capsys.readouterr().out
    assert "was NOT promoted" in printed
    (step,) = [line for line in printed.splitlines() if "--force --reason" in line]
    assert step.strip().startswith(f"desist promote risk --config {config} --version 1 --force")


def test_score_with_the_spark_engine_reaches_spark_scoring(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed: the Spark engine cannot run")
    import pipeline.spark_scoring as spark_scoring

    reached: dict[str, object] = {}

    def fake(config: object, **options: object) -> None:
        reached.update(options, config=config)
        raise spark_scoring.SparkScoringError("stopped after reaching Spark scoring")

    monkeypatch.setattr(spark_scoring, "score_file_spark", fake)
    files = ["--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")]
    spark = ["--engine", "spark", "--master", "spark://cluster:7077"]
    assert main(["score", *files, *spark]) == 2
    assert "stopped after reaching Spark scoring" in capsys.readouterr().err
    assert reached["master"] == "spark://cluster:7077"
    assert reached["config"].input == tmp_path / "in.csv"  # type: ignore[attr-defined]


def test_a_spark_master_without_the_spark_engine_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = ["--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")]
    assert main(["score", *files, "--master", "local[2]"]) == 2
    assert "--master needs --engine spark" in capsys.readouterr().err
