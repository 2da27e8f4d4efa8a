"""``desist score --config``: the config's champion by default, another model's features refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from data.synthetic import SynthConfig, generate_cohort
from models.contract.tags import CHAMPION
from pipeline.batch_model import (
    CHAMPION_URI,
    ModelFeatureMismatchError,
    check_features,
    expected_model,
    model_uri_for,
)
from pipeline.batch_scoring import BatchScoreConfig, score_file
from pipeline.cli import main
from pipeline.tracking import Tracker
from pipeline.train_risk import TrainResult

Trained = tuple[Tracker, TrainResult]


def risk_config(path: Path, name: str, features: tuple[str, ...]) -> Path:
    listed = ", ".join(f'"{f}"' for f in features)
    path.write_text(
        f'registered_model = "{name}"\nfeatures = [{listed}]\naudit_only = ["ethnicity"]\n'
        '[dataset]\nname = "cases"\n[dataset.synthetic]\nrows = 1000\n'
    )
    return path


@pytest.fixture
def champion(trained: Trained, tmp_path: Path) -> Trained:
    """A private copy of the trained registry with the trained version as champion."""
    tracker, result = trained
    home = tmp_path / "registry"
    home.mkdir()
    shutil.copy2(tracker.tracking_uri.removeprefix("sqlite:///"), home / "mlflow.db")
    own = Tracker.for_home(home)
    own.client().set_registered_model_alias(result.registered_model, CHAMPION, result.version)
    return own, result


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame, _ = generate_cohort(SynthConfig(rows=50, seed=8))
    path = tmp_path_factory.mktemp("cases") / "cases.csv"
    pd.DataFrame(frame).to_csv(path, index=False)
    return path


def features_of(trained: Trained) -> tuple[str, ...]:
    from benchmarks.support.configs import small_config

    return small_config().features


def test_without_model_the_configs_champion_scores(
    champion: Trained, cases: Path, tmp_path: Path
) -> None:
    tracker, result = champion
    config = risk_config(tmp_path / "risk.toml", result.registered_model, features_of(champion))
    done = score_file(
        BatchScoreConfig(input=cases, output=tmp_path / "s.csv", dataset_config=config),
        tracker=tracker,
    )
    assert done.model.name == result.registered_model
    assert done.model.version == result.version
    assert done.rows_scored == 50


def test_a_model_with_other_features_is_refused_before_any_row(
    champion: Trained, cases: Path, tmp_path: Path
) -> None:
    tracker, result = champion
    features = ("age", "total_sanctions", "custodial_history")
    config = risk_config(tmp_path / "risk.toml", result.registered_model, features)
    with pytest.raises(ModelFeatureMismatchError) as refused:
        score_file(
            BatchScoreConfig(input=cases, output=tmp_path / "s.csv", dataset_config=config),
            tracker=tracker,
        )
    message = str(refused.value)
    assert f"{result.registered_model} version {result.version}" in message
    assert "only the config names [custodial_history]" in message
    assert "drug_misuse" in message  # only the model uses it
    assert not (tmp_path / "s.csv").exists()


@pytest.fixture
def commanded(champion: Trained, monkeypatch: pytest.MonkeyPatch) -> Trained:
    """The champion's registry, as the ``desist`` command finds it (``MLFLOW_TRACKING_URI``)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion[0].tracking_uri)
    return champion


def test_the_command_names_the_model_first(
    commanded: Trained, cases: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, result = commanded
    config = risk_config(tmp_path / "risk.toml", result.registered_model, features_of(commanded))
    args = ["score", "--config", str(config), "--input", str(cases)]
    assert main([*args, "--output", str(tmp_path / "s.csv")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"Model {result.registered_model} version {result.version} (")
    other = risk_config(tmp_path / "other.toml", result.registered_model, ("age",))
    args = ["score", "--config", str(other), "--input", str(cases)]
    assert main([*args, "--output", str(tmp_path / "t.csv")]) == 2
    assert "does not use the features of" in capsys.readouterr().err


def test_which_files_name_a_model(tmp_path: Path) -> None:
    adapter_only = tmp_path / "adapter.toml"
    adapter_only.write_text('[adapter]\nid_column = "id"\n')
    assert expected_model(adapter_only) is None
    assert expected_model(None) is None
    assert expected_model(Path("configs/pathways.toml")) is None
    compas = expected_model(Path("configs/compas.toml"))
    assert compas is not None and compas.champion_uri == "models:/desist-risk-broward@champion"
    assert model_uri_for(None, compas) == compas.champion_uri
    assert model_uri_for(None, None) == CHAMPION_URI
    assert model_uri_for("models:/x/2", compas) == "models:/x/2"
    check_features("m", ("b", "a"), compas.__class__("n", ("a", "b"), adapter_only))  # order free
