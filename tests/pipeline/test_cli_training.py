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


def test_allocate_fills_the_places_and_prints_shares(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace

    import models.contract.fetch as fetch
    from data.schema import DEFAULT_FEATURES, PROGRAMMES, TARGET_FIELD
    from data.synthetic import SynthConfig, generate_cohort
    from models.pathways import PathwayEffectModel

    cohort, _ = generate_cohort(SynthConfig(rows=6000, seed=8))
    model = PathwayEffectModel(DEFAULT_FEATURES, max_iter=30).fit(
        cohort, cohort[TARGET_FIELD].to_numpy(dtype=int)
    )
    loaded = SimpleNamespace(model=model, label="desist-pathways version 1")
    monkeypatch.setattr(fetch, "fetch_model", lambda *a, **k: loaded)
    people = tmp_path / "cohort.csv"
    cohort.iloc[:500].drop(columns=[TARGET_FIELD]).to_csv(people, index=False)
    out = tmp_path / "allocation.csv"
    assert main(["allocate", str(people), "--places", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(20 places per programme) with desist-pathways version 1" in printed
    assert "share of places by sex" in printed
    allocation = pd.read_csv(out, keep_default_na=False)
    assert len(allocation) == 500
    counts = allocation["programme"].value_counts()
    assert all(counts.get(p, 0) <= 20 for p in PROGRAMMES)
    assert counts.drop("", errors="ignore").sum() > 20  # more than one programme's places used
