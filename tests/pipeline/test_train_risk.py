from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from benchmarks.support.configs import small_config
from data.errors import SchemaValidationError
from data.loaders import write_table
from data.synthetic import SynthConfig, generate_cohort
from models.contract.artifact import directory_digest
from models.contract.tags import (
    RUN_ERROR,
    RUN_FAIRNESS_REPORT,
    RUN_PARENT,
    RUN_SELECTED_FAMILY,
    TAG_DIGEST,
    TAG_FAMILY,
    TAG_FEATURES,
    TAG_MODEL_CARD,
    calibration_tag,
)
from models.risk import AverageSettings, BoostingSettings, ScorecardSettings
from pipeline import risk_record
from pipeline.config import DatasetConfig
from pipeline.jobs import config_params, split_frame
from pipeline.tracking import Tracker
from pipeline.train_risk import TrainResult, train


def test_split_is_stratified_disjoint_and_reproducible() -> None:
    frame, _ = generate_cohort(SynthConfig(rows=5_000, seed=1))
    config = small_config()
    first = split_frame(frame, config)
    again = split_frame(frame, config)
    refs = [set(part["subject_ref"]) for part in (first.train, first.calibration, first.test)]
    assert sum(map(len, refs)) == 5_000 and not (refs[0] & refs[1] or refs[0] & refs[2])
    assert first.test["subject_ref"].tolist() == again.test["subject_ref"].tolist()
    rates = [p["reoffended_12m"].astype(float).mean() for p in (first.train, first.test)]
    assert rates[0] == pytest.approx(rates[1], abs=0.01)
    assert len(first.test) == 1_000 and len(first.calibration) == 1_000


def test_a_cross_fitted_split_has_no_calibration_rows_and_the_same_test_rows() -> None:
    frame, _ = generate_cohort(SynthConfig(rows=5_000, seed=1))
    split = split_frame(frame, small_config())
    crossed = split_frame(frame, small_config(calibration_folds=3))
    assert crossed.test["subject_ref"].tolist() == split.test["subject_ref"].tolist()
    assert crossed.calibration.empty and len(crossed.train) == 4_000
    assert set(crossed.train["subject_ref"]) == set(split.train["subject_ref"]) | set(
        split.calibration["subject_ref"]
    )


def test_a_cross_fitted_job_chooses_and_checks_on_out_of_fold_scores(tracker: Tracker) -> None:
    result = train(small_config(calibration_folds=3), tracker=tracker)
    client = tracker.client()
    for family in result.families:
        metrics = client.get_run(family.run_id).data.metrics
        assert "calibration_split_roc_auc" not in metrics
        assert metrics["out_of_fold_roc_auc"] == pytest.approx(family.selection_roc_auc)
        assert 0 < metrics["out_of_fold_ece_noise_floor"] < 0.1
        assert 0 <= metrics["out_of_fold_ece_debiased"] < 0.1
    chosen = max(result.families, key=lambda f: f.selection_roc_auc)
    assert result.selected_family == chosen.family
    parent = client.get_run(result.run_id).data.metrics
    assert 0 <= parent["test_ece_noise_p"] <= 1
    card = Path(client.download_artifacts(result.run_id, "model_card.md")).read_text()
    assert "3-fold out-of-fold scores of all 3,200 training people" in card
    assert "calibration people" not in card


def test_config_is_logged_whole() -> None:
    params = config_params(small_config())
    assert params["dataset.synthetic.rows"] == "4000"
    assert params["bands.cutoffs"] == "[0.3, 0.5, 0.7]"
    assert params["models.1.family"] == "boosting"
    assert json.loads(params["features"])[0] == "age"


def test_run_holds_metrics_for_every_family_and_group(trained: tuple[Tracker, TrainResult]) -> None:
    tracker, result = trained
    run = tracker.get_run(result.run_id)
    metrics = run.data.metrics
    for key in (
        "test_roc_auc",
        "test_roc_auc_ci_low",
        "test_roc_auc_ci_high",
        "test_pr_auc",
        "test_brier",
        "test_log_loss",
        "test_ece",
        "test_calibration_slope",
        "test_calibration_intercept",
        "test_band_high_observed_rate",
        "test_group_sex_female_ece",
        "test_group_ethnicity_white_roc_auc",
        "test_max_group_calibration_gap",
    ):
        assert key in metrics, key
    assert (
        metrics["test_roc_auc_ci_low"] < metrics["test_roc_auc"] < metrics["test_roc_auc_ci_high"]
    )
    assert run.data.params["dataset.name"] == "synthetic-test"
    assert run.data.tags[RUN_SELECTED_FAMILY] == result.selected_family
    assert {f.family for f in result.families} == {"scorecard", "boosting"}


def test_run_logs_the_dataset(trained: tuple[Tracker, TrainResult]) -> None:
    tracker, result = trained
    (logged,) = tracker.get_run(result.run_id).inputs.dataset_inputs
    assert logged.dataset.name == "synthetic-test"
    assert logged.dataset.digest
    assert "generate_cohort" in logged.dataset.source


def test_child_runs_hold_plots_card_and_model(trained: tuple[Tracker, TrainResult]) -> None:
    tracker, result = trained
    client = tracker.client()
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert {run.info.run_id for run in children} == {f.run_id for f in result.families}
    for family in result.families:
        names = {a.path for a in client.list_artifacts(family.run_id, "plots")}
        assert {
            "plots/roc_curve.png",
            "plots/reliability.png",
            "plots/score_distribution.png",
            "plots/bands.png",
            "plots/feature_effects.png",
            "plots/group_calibration.png",
        } <= names
        top = {a.path for a in client.list_artifacts(family.run_id)}
        assert {"model_card.md", "model_card.html"} <= top
        card = Path(client.download_artifacts(family.run_id, "model_card.md")).read_text()
        assert "supports, and does not replace, a practitioner's professional judgement" in card


def test_registered_version_loads_and_matches_its_digest(
    trained: tuple[Tracker, TrainResult],
) -> None:
    tracker, result = trained
    version = tracker.client().get_model_version("desist-risk", result.version)
    assert json.loads(version.tags[TAG_FEATURES])[-1] == "sex"
    with tracker.activate():
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=result.model_uri))
        assert directory_digest(local) == version.tags[TAG_DIGEST] == result.artifact_digest
        info = mlflow.models.get_model_info(result.model_uri)
        assert info.signature is not None
        assert "total_sanctions" in info.signature.inputs.input_names()
        model = mlflow.sklearn.load_model(result.model_uri)
    frame, _ = generate_cohort(SynthConfig(rows=20, seed=99))
    p = model.predict_proba(frame)[:, 1]
    assert np.all((p > 0) & (p < 1))


def _registered_versions(tracker: Tracker) -> list[object]:
    return list(tracker.client().search_model_versions("name='desist-risk'"))


def _only_run(tracker: Tracker) -> mlflow.entities.Run:
    experiment = tracker.client().get_experiment_by_name("desist-risk")
    runs = tracker.client().search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (run,) = parents
    return run


def test_bad_data_fails_the_run_and_registers_nothing(tracker: Tracker, tmp_path: Path) -> None:
    frame, _ = generate_cohort(SynthConfig(rows=500, seed=2))
    frame["age"] = frame["age"].astype("Int64")
    frame.loc[10, "age"] = 150
    path = tmp_path / "bad.csv"
    write_table(frame, path)
    config = small_config(dataset=DatasetConfig(name="bad", path=path))
    with pytest.raises(SchemaValidationError, match="age, row 11"):
        train(config, tracker=tracker)
    run = _only_run(tracker)
    assert run.info.status == "FAILED"
    assert "age, row 11: out of range" in run.data.tags[RUN_ERROR]
    assert _registered_versions(tracker) == []


def test_failure_during_training_registers_nothing(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full while drawing")

    monkeypatch.setattr(risk_record, "plot_reliability", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        train(small_config(), tracker=tracker)
    assert _only_run(tracker).info.status == "FAILED"
    assert _registered_versions(tracker) == []


@pytest.mark.postgres
def test_training_against_a_postgresql_store(postgres_database: str, tmp_path: Path) -> None:
    store = Tracker(tracking_uri=postgres_database, artifact_root=(tmp_path / "art").as_uri())
    config = small_config(models=small_config().models[:1])
    result = train(config, tracker=store)
    version = store.client().get_model_version("desist-risk", result.version)
    assert version.tags[TAG_DIGEST] == result.artifact_digest
    assert store.get_run(result.run_id).info.status == "FINISHED"
    assert result.test["roc_auc"] > 0.6
    assert len(store.client().search_runs([result.experiment_id])) == 2  # parent + one family


def test_a_blend_trains_registers_and_explains_like_any_family(tracker: Tracker) -> None:
    from models.explain import AVERAGE, FastExplainer

    blend = AverageSettings(members=(ScorecardSettings(), BoostingSettings(max_iter=40)))
    result = train(small_config(models=(blend,), calibration_folds=3), tracker=tracker)
    assert result.selected_family == "average"
    version = tracker.client().get_model_version("desist-risk", result.version)
    assert version.tags[TAG_FAMILY] == "average"
    with tracker.activate():
        model = mlflow.sklearn.load_model(result.model_uri)
    frame, _ = generate_cohort(SynthConfig(rows=50, seed=99))
    explained = FastExplainer(model).explain(frame)
    np.testing.assert_allclose(explained.probability, model.predict_proba(frame)[:, 1], atol=1e-12)
    assert explained.method.startswith(AVERAGE)


def test_a_logged_model_states_its_requirements_pinned_to_what_is_installed(
    trained: tuple[Tracker, TrainResult],
) -> None:
    import importlib.metadata

    from pipeline.tracking import MODEL_PACKAGES

    tracker, result = trained
    with tracker.activate():
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=result.model_uri))
    listed = (local / "requirements.txt").read_text().split()
    assert listed == [f"{name}=={importlib.metadata.version(name)}" for name in MODEL_PACKAGES]
    assert not any(line.startswith("pytest") for line in listed)  # not the test process's own


def test_the_registered_version_tells_its_whole_story(trained: tuple[Tracker, TrainResult]) -> None:
    tracker, result = trained
    client = tracker.client()
    version = client.get_model_version("desist-risk", result.version)
    # The calibration gate was judged on the test split and written figure by figure.
    assert result.calibration_gate is not None
    assert version.tags[calibration_tag("passed")] == str(result.calibration_gate.passed).lower()
    assert calibration_tag("overall.spiegelhalter_z.limit") in version.tags
    # The card the version links is the complete one, titled with its name and version.
    source = version.tags[TAG_MODEL_CARD].removeprefix("runs:/").split("/")[0]
    assert source == version.run_id
    card = Path(client.download_artifacts(source, "model_card.md")).read_text()
    assert card.startswith(f"# Model card: desist-risk (version {result.version})")
    for heading in ("## Comparisons", "## Fairness", "## Calibration gate", "## Reports"):
        assert heading in card
    assert f"runs:/{result.run_id}/fairness/report.html" in card
    parent_card = Path(client.download_artifacts(result.run_id, "model_card.md")).read_text()
    assert parent_card == card
    # The source run points at the parent run's reports.
    source_tags = client.get_run(source).data.tags
    assert source_tags[RUN_PARENT] == result.run_id
    assert source_tags[RUN_FAIRNESS_REPORT].endswith("/fairness/report.html")
    # Descriptions a reviewer reads first.
    assert "re-offending risk model trained by desist" in (
        client.get_registered_model("desist-risk").description or ""
    )
    assert "Calibration gate on the test split" in (version.description or "")
    assert "Test ROC AUC" in (version.description or "")
    gate_rows = client.download_artifacts(result.run_id, "tables/calibration_gate.json")
    assert "noise_test" in Path(gate_rows).read_text()
