from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from data.errors import DatasetFormatError, SchemaValidationError, SourceAdapterError
from data.schema import ID_FIELD
from data.synthetic import SynthConfig, generate_cohort
from data.validation import check_rows, validate_frame
from models.bands import RiskBands
from models.calibration import ScoreCalibratedClassifier
from models.contract.artifact import skops_trusted_types
from models.contract.errors import ModelIntegrityError, ModelLoadError
from models.contract.fetch import fetch_model
from models.contract.tags import META_DIGEST, META_MODEL, META_VERIFIED, TAG_DIGEST
from pipeline.batch_scoring import BatchScoreConfig, score_file
from pipeline.cli import main
from pipeline.tracking import Tracker
from pipeline.train_risk import TrainResult

Trained = tuple[Tracker, TrainResult]
REASONS = [f"reason_{i}" for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    """300 people as a case system exports them: canonical columns, outcome included."""
    frame, _ = generate_cohort(SynthConfig(rows=300, seed=41))
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={ID_FIELD: "string"}, keep_default_na=False)
    return pq.read_table(path).to_pandas()


def run(trained: Trained, source: Path, output: Path, **options: object) -> object:
    tracker, result = trained
    config = BatchScoreConfig(
        model_uri=str(options.pop("model_uri", result.model_uri)),
        input=source,
        output=output,
        **options,  # type: ignore[arg-type]
    )
    return score_file(config, tracker=tracker)


def model_of(trained: Trained) -> object:
    tracker, result = trained
    uri, store = result.model_uri, tracker.tracking_uri
    return fetch_model(uri, ScoreCalibratedClassifier, tracking_uri=store).model


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_every_row_is_scored_in_order_with_band_and_reasons(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    source = write(cohort, tmp_path / f"cases{suffix}")
    result = run(trained, source, tmp_path / f"scores{suffix}", chunk_rows=64)
    scores = read(tmp_path / f"scores{suffix}")

    assert result.rows_read == result.rows_scored == len(cohort)  # type: ignore[attr-defined]
    assert scores[ID_FIELD].tolist() == cohort[ID_FIELD].tolist()
    model = model_of(trained)
    expected = model.predict_proba(validate_frame(cohort))[:, 1]  # type: ignore[attr-defined]
    np.testing.assert_allclose(scores["risk_probability"], expected, rtol=0, atol=1e-12)
    bands = RiskBands()  # the small config's bands are the defaults
    assert scores["risk_band"].astype(str).tolist() == bands.band_names(expected).tolist()
    features = set(model.estimator.named_steps["encode"].features_)  # type: ignore[attr-defined]
    for name in REASONS:
        assert set(scores[name].astype(str)) <= features
    sizes = scores[[f"{name}_contribution" for name in REASONS]].abs().to_numpy()
    assert (np.diff(sizes, axis=1) <= 0).all() and (sizes[:, 0] > 0).all()
    rejects = pd.read_csv(tmp_path / "scores.rejected.csv")
    assert rejects.empty and list(rejects.columns) == ["row", ID_FIELD, "column", "reason"]
    assert result.band_counts == {  # type: ignore[attr-defined]
        name: int((scores["risk_band"].astype(str) == name).sum())
        for name in ("low", "medium", "high", "very high")
    }


def test_rejected_rows_are_reported_with_row_column_and_reason_not_dropped(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path
) -> None:
    broken = cohort.astype(object).where(cohort.notna(), None)
    broken.loc[4, "age"] = 12
    broken.loc[8, "sex"] = "x"
    broken.loc[8, "offence_category"] = "arson"
    broken.loc[20, ID_FIELD] = broken.loc[2, ID_FIELD]  # a duplicate across chunks of 7
    broken.loc[30, "total_sanctions"] = "lots"
    source = write(broken, tmp_path / "cases.csv")
    result = run(trained, source, tmp_path / "scores.csv", chunk_rows=7)

    rejects = pd.read_csv(tmp_path / "scores.rejected.csv", dtype={ID_FIELD: "string"})
    found = {(r.row, r.column, r.reason.split(":")[0].split(" (")[0]) for r in rejects.itertuples()}
    assert found == {
        (5, "age", "out of range"),
        (9, "sex", "unknown category 'x'"),
        (9, "offence_category", "unknown category 'arson'"),
        (21, ID_FIELD, "duplicate id " + repr(cohort.loc[2, ID_FIELD])),
        (31, "total_sanctions", "not a number"),
    }
    assert "first seen in row 3" in rejects.loc[rejects["row"] == 21, "reason"].item()
    assert rejects.loc[rejects["row"] == 5, ID_FIELD].item() == cohort.loc[4, ID_FIELD]
    scores = read(tmp_path / "scores.csv")
    kept = cohort.drop(index=[4, 8, 20, 30])
    assert scores[ID_FIELD].tolist() == kept[ID_FIELD].tolist()
    assert (result.rows_read, result.rows_scored, result.rows_rejected) == (300, 296, 4)  # type: ignore[attr-defined]
    assert result.violations == 5  # type: ignore[attr-defined]


def test_chunk_boundaries_and_file_format_do_not_change_results(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path
) -> None:
    csv = write(cohort, tmp_path / "cases.csv")
    parquet = write(cohort, tmp_path / "cases.parquet")
    run(trained, csv, tmp_path / "whole.csv", chunk_rows=1_000)
    run(trained, csv, tmp_path / "chunked.csv", chunk_rows=13, threads=1)
    run(trained, parquet, tmp_path / "chunked.parquet", chunk_rows=29)
    whole = read(tmp_path / "whole.csv")
    pd.testing.assert_frame_equal(read(tmp_path / "chunked.csv"), whole)
    from_parquet = read(tmp_path / "chunked.parquet")
    for name in [*REASONS, "risk_band"]:
        from_parquet[name] = from_parquet[name].astype(str)
    pd.testing.assert_frame_equal(from_parquet, whole, check_dtype=False)


def test_parquet_output_records_the_model(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path
) -> None:
    source = write(cohort, tmp_path / "cases.csv")
    run(trained, source, tmp_path / "scores.parquet")
    meta = pq.read_schema(tmp_path / "scores.parquet").metadata
    assert meta[META_MODEL.encode()].decode() == "desist-risk version 1"
    assert meta[META_DIGEST.encode()].decode() == trained[1].artifact_digest
    assert meta[META_VERIFIED.encode()] == b"true"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/no-such-model@champion", "cannot resolve"),
        ("models:/desist-risk/99", "cannot resolve"),
        ("s3://bucket/model", "not a model URI"),
    ],
)
def test_a_bad_model_uri_is_a_clear_error_and_writes_nothing(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path, uri: str, message: str
) -> None:
    source = write(cohort.head(20), tmp_path / "cases.csv")
    with pytest.raises(ModelLoadError, match=message):
        run(trained, source, tmp_path / "scores.csv", model_uri=uri)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.csv"]


def test_a_model_whose_files_changed_since_registration_is_refused(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path
) -> None:
    tracker, result = trained
    client = tracker.client()
    client.set_model_version_tag(result.registered_model, result.version, TAG_DIGEST, "sha256:0")
    source = write(cohort.head(20), tmp_path / "cases.csv")
    try:
        with pytest.raises(ModelIntegrityError, match="does not match the registered sha256:0"):
            run(trained, source, tmp_path / "scores.csv")
    finally:
        client.set_model_version_tag(
            result.registered_model, result.version, TAG_DIGEST, result.artifact_digest
        )
    assert not (tmp_path / "scores.csv").exists()


def test_run_uris_are_verified_against_their_registration_or_refused(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path
) -> None:
    tracker, result = trained
    source = write(cohort.head(50), tmp_path / "cases.csv")
    version = tracker.client().get_model_version(result.registered_model, result.version)
    registered = run(trained, source, tmp_path / "a.csv", model_uri=f"runs:/{version.run_id}/model")
    assert registered.model.verified and registered.model.version == "1"  # type: ignore[attr-defined]

    model = model_of(trained)
    with tracker.activate(), mlflow.start_run(experiment_id=tracker.experiment_id("loose")) as r:
        mlflow.sklearn.log_model(
            model, name="model", skops_trusted_types=skops_trusted_types(model)
        )
    loose = f"runs:/{r.info.run_id}/model"
    with pytest.raises(ModelLoadError, match="never registered"):
        run(trained, source, tmp_path / "b.csv", model_uri=loose)
    assert not (tmp_path / "b.csv").exists()
    unverified = run(trained, source, tmp_path / "b.csv", model_uri=loose, allow_unverified=True)
    assert not unverified.model.verified and unverified.model.digest.startswith("sha256:")  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(read(tmp_path / "b.csv"), read(tmp_path / "a.csv"))


def test_a_failure_midway_leaves_no_partial_output_and_keeps_the_old_one(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.batch_scoring as job

    calls = []

    def failing_on_the_fifth_chunk(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 5:
            raise OSError("No space left on device")
        return check_rows(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(job, "check_rows", failing_on_the_fifth_chunk)
    source = write(cohort, tmp_path / "cases.parquet")
    output = tmp_path / "scores.parquet"
    output.write_text("previous results\n")
    with pytest.raises(OSError, match="No space left"):
        run(trained, source, output, chunk_rows=50)
    assert len(calls) == 5
    assert output.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.parquet", "scores.parquet"]


def test_an_unreadable_file_is_a_clear_error(trained: Trained, tmp_path: Path) -> None:
    source = tmp_path / "cases.parquet"
    source.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetFormatError, match="cannot be read as parquet"):
        run(trained, source, tmp_path / "scores.csv")
    with pytest.raises(DatasetFormatError, match="no such file"):
        run(trained, tmp_path / "absent.csv", tmp_path / "scores.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.parquet"]


def test_a_missing_required_column_refuses_the_file(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path
) -> None:
    source = write(cohort.drop(columns=["age"]), tmp_path / "cases.parquet")
    with pytest.raises(SchemaValidationError, match="age, all rows: missing required column"):
        run(trained, source, tmp_path / "scores.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.parquet"]


ADAPTER = """
[adapter]
id_column = "person"
never_features = ["reoffended"]

[adapter.fields]
age = { column = "Age" }
total_sanctions = { column = "priors" }
offence_category = { column = "offence", values = { THEFT = "theft", ASSAULT = "violence" } }
sex = { column = "gender", values = { M = "male", F = "female" } }
"""


def test_a_dataset_config_adapts_the_source_and_keeps_its_id_column(
    trained: Trained, tmp_path: Path
) -> None:
    config = tmp_path / "source.toml"
    config.write_text(ADAPTER)
    rng = np.random.default_rng(5)
    source = pd.DataFrame(
        {
            "person": [f"P{i:03d}" for i in range(40)],
            "Age": rng.integers(18, 70, 40),
            "priors": rng.integers(0, 20, 40),
            "offence": rng.choice(["THEFT", "ASSAULT"], 40),
            "gender": rng.choice(["M", "F"], 40),
            "reoffended": rng.integers(0, 2, 40),
        }
    )
    source.loc[17, "Age"] = 9
    path = write(source, tmp_path / "source.csv")
    result = run(trained, path, tmp_path / "scores.csv", dataset_config=config, chunk_rows=8)
    scores = read(tmp_path / "scores.csv")
    assert list(scores.columns[:2]) == ["person", "risk_probability"]
    assert scores["person"].tolist() == [p for i, p in enumerate(source["person"]) if i != 17]
    rejects = pd.read_csv(tmp_path / "scores.rejected.csv")
    assert rejects[["row", "person", "column"]].values.tolist() == [[18, "P017", "age"]]
    assert result.rows_scored == 39  # type: ignore[attr-defined]


def test_a_value_the_adapter_cannot_map_rejects_only_its_row(
    trained: Trained, tmp_path: Path
) -> None:
    config = tmp_path / "source.toml"
    config.write_text(ADAPTER)
    source = pd.DataFrame(
        {
            "person": [f"P{i:03d}" for i in range(30)],
            "Age": [30 + i for i in range(30)],
            "priors": ["2"] * 30,
            "offence": ["THEFT", "ASSAULT"] * 15,
            "gender": ["M", "F", "F"] * 10,
            "reoffended": [0, 1] * 15,
        }
    )
    source.loc[21, "offence"] = "ARSON"  # no mapping, in the third chunk
    source.loc[3, "priors"] = "lots"  # copied as it is: the schema refuses it
    path = write(source, tmp_path / "source.csv")
    result = run(trained, path, tmp_path / "scores.csv", dataset_config=config, chunk_rows=8)
    scores = read(tmp_path / "scores.csv")
    assert scores["person"].tolist() == [
        p for i, p in enumerate(source["person"]) if i not in (3, 21)
    ]
    rejects = pd.read_csv(tmp_path / "scores.rejected.csv")
    assert rejects[["row", "person", "column"]].values.tolist() == [
        [4, "P003", "total_sanctions"],
        [22, "P021", "offence"],
    ]
    assert rejects["reason"].tolist() == [
        "not a number: 'lots'",
        "value 'ARSON' has no mapping to offence_category (add it to values, or a default)",
    ]
    assert (result.rows_scored, result.rows_rejected) == (28, 2)  # type: ignore[attr-defined]

    with pytest.raises(SourceAdapterError, match="gender: missing from the source"):
        run(
            trained,
            write(source.drop(columns=["gender"]), tmp_path / "no-gender.csv"),
            tmp_path / "again.csv",
            dataset_config=config,
        )
    assert not (tmp_path / "again.csv").exists()


def test_the_score_command_prints_a_summary(
    trained: Trained,
    cohort: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tracker, result = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.tracking_uri)
    source = write(cohort.head(40), tmp_path / "cases.parquet")
    args = ["score", "--model", result.model_uri, "--input", str(source)]
    assert main([*args, "--output", str(tmp_path / "scores.parquet")]) == 0
    printed = capsys.readouterr()
    assert "Scored 40 of 40 rows" in printed.out and "digest verified" in printed.out
    assert "rejected: 0 rows" in printed.out and "40 of 40 rows: 40 scored" in printed.err
    assert main([*args, "--output", str(source)]) == 2
    assert "must not overwrite the input" in capsys.readouterr().err


def test_a_file_without_rows_is_refused(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path
) -> None:
    source = write(cohort.head(0), tmp_path / "cases.csv")
    with pytest.raises(SchemaValidationError, match="dataset has no rows"):
        run(trained, source, tmp_path / "scores.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.csv"]


def test_a_model_without_a_batch_explanation_is_a_clear_error(
    trained: Trained, cohort: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.batch_scoring as job

    def refuse(model: object, *, threads: int) -> None:
        raise TypeError("no explanation method for SVC")

    monkeypatch.setattr(job, "FastExplainer", refuse)
    source = write(cohort.head(20), tmp_path / "cases.csv")
    with pytest.raises(ModelLoadError, match="cannot be scored in batches: no explanation"):
        run(trained, source, tmp_path / "scores.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.csv"]
