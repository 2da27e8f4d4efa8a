"""A source in its own columns, through an adapter, compared with its incumbent tool."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from benchmarks.support.configs import small_config
from data.adapters import make_adapter
from data.errors import LeakageError
from data.loaders import write_table
from data.synthetic import SynthConfig, generate_cohort
from models.contract.tags import RUN_LEAKAGE_WARNING
from models.risk import ScorecardSettings
from pipeline.comparison import OperatingPoint
from pipeline.config import (
    BaselineConfig,
    DatasetConfig,
    FairnessConfig,
    IncumbentConfig,
    RiskTrainConfig,
    check_leakage,
    load_risk_config,
)
from pipeline.risk_audit import LeakageWarning, screen_single_features
from pipeline.tracking import Tracker
from pipeline.train_risk import train

REPO = Path(__file__).parents[2]
COMPAS_DATA = Path(
    os.environ.get(
        "DESIST_COMPAS_PATH",
        REPO.parent / "shared" / "data" / "compas" / "compas-scores-two-years.csv",
    )
)
RACE = {"black": "african_american", "white": "caucasian", "asian": "asian"}

ADAPTER = {
    "id_column": "case_id",
    "never_features": ["recid", "tool_decile", "race_text"],
    "fields": {
        "age": {"column": "AGE"},
        "total_sanctions": {"column": "PRIORS"},
        "offence_category": {"column": "OFFENCE"},
        "months_offence_free": {"column": "FREE"},
        "race": {"column": "race_text", "values": RACE, "default": "other"},
        "sex": {"column": "SEX"},
        "reoffended_24m": {"column": "recid"},
        "incumbent_decile": {"column": "tool_decile"},
    },
}


def _source(path: Path) -> Path:
    cohort, truth = generate_cohort(SynthConfig(rows=2_000, seed=21))
    rng = np.random.default_rng(0)
    noisy = truth["p_reoffend"].to_numpy() + rng.normal(0, 0.2, len(truth))
    source = pd.DataFrame(
        {
            "case_id": cohort["subject_ref"],
            "AGE": cohort["age"],
            "PRIORS": cohort["total_sanctions"],
            "OFFENCE": cohort["offence_category"].astype(str),
            "FREE": cohort["months_offence_free"],
            "race_text": cohort["ethnicity"].astype(object),
            "SEX": cohort["sex"].astype(str),
            "recid": cohort["reoffended_12m"],
            "tool_decile": pd.qcut(noisy, 10, labels=False) + 1,
        }
    )
    write_table(source, path)
    return path


def _config(path: Path, **changes: object) -> RiskTrainConfig:
    settings: dict[str, object] = {
        **dict(small_config()),
        "dataset": DatasetConfig(name="source", path=path),
        "adapter": make_adapter(ADAPTER),
        "target": "reoffended_24m",
        "features": ("age", "total_sanctions", "offence_category", "months_offence_free"),
        "audit_only": ("race", "sex"),
        "incumbent": IncumbentConfig(name="Tool decile", field="incumbent_decile", cutoff=5),
        "baselines": (BaselineConfig(name="age and priors", features=("age", "total_sanctions")),),
        "fairness": FairnessConfig(n_bootstrap=20, min_group_size=20),
        "models": (ScorecardSettings(),),
    }
    return RiskTrainConfig(**{**settings, **changes})  # type: ignore[arg-type]


def test_an_adapted_source_is_trained_compared_and_audited(tmp_path: Path) -> None:
    tracker = Tracker.for_home(tmp_path / "home")
    result = train(_config(_source(tmp_path / "source.csv")), tracker=tracker)
    assert {"Tool decile", "age and priors"} <= set(result.comparisons)
    gain, low, high = result.auc_gains["Tool decile"]
    assert low <= gain <= high
    assert any("african_american / caucasian" in line for line in result.fairness_summary)
    run = tracker.get_run(result.run_id)
    assert "test_tool_decile_roc_auc" in run.data.metrics
    assert "test_auc_gain_over_age_and_priors" in run.data.metrics
    assert run.data.metrics["test_ece_noise_floor"] > 0
    folder = Path(
        mlflow.artifacts.download_artifacts(run_id=result.run_id, tracking_uri=tracker.tracking_uri)
    )
    report = (folder / "fairness" / "report.html").read_text()
    assert "Kleinberg" in report and "Tool decile" in report
    card = (folder / "model_card.md").read_text()
    assert "False positive rate ratio african_american / caucasian" in card
    assert "Tool decile" in card and "flags as many as" in card
    assert (folder / "fairness" / "by_group.csv").is_file()


@pytest.mark.parametrize(
    ("feature", "reason"),
    [
        ("race", "made from race_text, listed in the adapter's never_features"),
        ("sex", "audit-only"),
    ],
)
def test_training_refuses_leaking_features(tmp_path: Path, feature: str, reason: str) -> None:
    with pytest.raises(LeakageError, match=reason):
        _config(tmp_path / "x.csv", features=("age", feature))


@pytest.mark.parametrize(
    ("feature", "reason"), [("incumbent_decile", "another tool"), ("reoffended_24m", "outcome")]
)
def test_outcomes_and_other_tools_scores_are_refused_by_reason(feature: str, reason: str) -> None:
    with pytest.raises(LeakageError, match=reason):
        check_leakage(("age", feature), (), None)


def test_a_model_constructed_config_is_still_refused_before_training(tmp_path: Path) -> None:
    config = _config(tmp_path / "x.csv")
    sneaky = config.model_construct(**{**dict(config), "features": ("age", "sex")})
    tracker = Tracker.for_home(tmp_path / "home")
    with pytest.raises(LeakageError, match="sex"):
        train(sneaky, tracker=tracker)
    assert not tracker.client().search_registered_models()


def test_a_single_feature_that_predicts_the_outcome_is_warned_and_recorded(
    tmp_path: Path,
) -> None:
    cohort, _ = generate_cohort(SynthConfig(rows=1_000, seed=2))
    cohort["custodial_history"] = cohort["reoffended_12m"]
    config = small_config(features=("age", "custodial_history"))
    tracker = Tracker.for_home(tmp_path / "home")
    lines: list[str] = []
    with (
        tracker.activate(),
        mlflow.start_run(experiment_id=tracker.experiment_id("t")) as run,
        pytest.warns(LeakageWarning, match="custodial_history alone reaches AUC 1.000"),
    ):
        screen_single_features(config, cohort, lines.append)
    tag = tracker.get_run(run.info.run_id).data.tags[RUN_LEAKAGE_WARNING]
    assert "custodial_history" in tag and lines and "WARNING" in lines[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeakageWarning)
        with tracker.activate(), mlflow.start_run(experiment_id=tracker.experiment_id("t")):
            screen_single_features(small_config(features=("age",)), cohort, lines.append)


def test_the_compas_config_loads_with_its_adapter_and_comparisons() -> None:
    config = load_risk_config(REPO / "configs" / "compas.toml", data=COMPAS_DATA)
    assert config.adapter is not None and config.target == "reoffended_24m"
    assert "sex" not in config.features and "race" not in config.features
    assert config.incumbent is not None and config.incumbent.cutoff == 5
    assert config.audited_attributes[:2] == ("race", "sex")
    assert config.cross_fitted and config.calibration == "sigmoid"
    assert config.intended_use.startswith("A benchmark") and "\\" not in config.intended_use
    assert OperatingPoint("x", 0.5).threshold == 0.5
