from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import skops.io

from data.schema import DEFAULT_FEATURES, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort
from models.contract.artifact import (
    TRUSTED_TYPES,
    check_artifact_format,
    directory_digest,
    load_skops_model,
    skops_trusted_types,
)
from models.contract.errors import ModelLoadError, UntrustedArtifactError
from models.pathways import PathwayEffectModel
from models.risk import AverageSettings, BoostingSettings, ScorecardSettings
from tests.support.crafted import Planted, call_node, write_mlmodel, write_skops
from tests.support.risk_models import fit_calibrated


@pytest.fixture(scope="module")
def every_model() -> dict[str, object]:
    """Each risk family (calibrated) and the pathway model, fitted on 3,000 people."""
    cohort, _ = generate_cohort(SynthConfig(rows=3_000, seed=21))
    train, held_out = cohort.iloc[:2_000], cohort.iloc[2_000:]
    models: dict[str, object] = {}
    for settings in (
        ScorecardSettings(max_bins=8),
        BoostingSettings(max_iter=10),
        AverageSettings(members=(ScorecardSettings(max_bins=8), BoostingSettings(max_iter=10))),
    ):
        models[settings.family] = fit_calibrated(settings, train, held_out)
    outcome = cohort[TARGET_FIELD].to_numpy(dtype=int)
    models["pathways"] = PathwayEffectModel(DEFAULT_FEATURES, max_iter=10).fit(cohort, outcome)
    return models


def test_the_trusted_types_are_exactly_what_desist_models_need(
    every_model: dict[str, object],
) -> None:
    needed: set[str] = set()
    for name, model in every_model.items():
        found = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
        assert found <= TRUSTED_TYPES, name
        assert skops_trusted_types(model) == sorted(found)
        needed |= found
    assert needed == TRUSTED_TYPES  # nothing trusted that no desist model holds
    assert all(t.count(".") >= 2 and not t.endswith(".") for t in TRUSTED_TYPES)  # module.Class


class Stranger:
    """A type from outside desist's models."""


def test_a_model_holding_a_foreign_type_is_not_logged() -> None:
    with pytest.raises(TypeError, match="outside the trusted"):
        skops_trusted_types({"thing": Stranger()})


# --- crafted artifacts: refused, and nothing they would run runs ---


def _model_dir(tmp_path: Path, *, trusted: list[str] | None = None, **flavor: object) -> Path:
    files = tmp_path / "model"
    files.mkdir()
    return write_mlmodel(files, trusted=trusted, **flavor)


def test_mlmodel_asking_to_trust_eval_is_refused(tmp_path: Path) -> None:
    files = _model_dir(tmp_path, trusted=["builtins.eval"])
    with pytest.raises(UntrustedArtifactError, match=re.escape("builtins.eval")):
        check_artifact_format(files, "m", "1")


def test_a_prefix_of_a_trusted_package_is_not_trusted(tmp_path: Path) -> None:
    files = _model_dir(tmp_path, trusted=["models.calibration.ScoreCalibratedClassifier"])
    check_artifact_format(files, "m", "1")
    (files / "MLmodel").unlink()
    files.rmdir()
    stranger = _model_dir(tmp_path, trusted=["models.x.Y", "sklearn.utils.Bunch"])
    with pytest.raises(UntrustedArtifactError, match=re.escape("models.x.Y")):
        check_artifact_format(stranger, "m", "1")


@pytest.mark.parametrize(
    ("module", "function"), [("builtins", "eval"), ("builtins", "exec"), ("os", "system")]
)
def test_a_skops_file_that_would_call_code_is_refused_before_anything_runs(
    tmp_path: Path, module: str, function: str
) -> None:
    marker = tmp_path / "ran"
    payload = {
        "eval": f"open({str(marker)!r}, 'w')",
        "exec": f"open({str(marker)!r}, 'w')",
        "system": f"touch {marker}",
    }[function]
    # MLmodel lists the type too: it is refused whatever MLmodel says.
    files = _model_dir(tmp_path, trusted=[f"{module}.{function}"])
    write_skops(files / "model.skops", call_node(module, function, payload))
    with pytest.raises(UntrustedArtifactError, match=f"{module}.{function}"):
        load_skops_model(files, "m version 1")
    assert not marker.exists()


@pytest.mark.parametrize(("module", "function"), [("builtins", "eval"), ("os", "system")])
def test_the_crafted_payloads_would_run_if_trusted(
    tmp_path: Path, module: str, function: str
) -> None:
    """The control: what the refusals above prevent is real."""
    marker = tmp_path / "ran"
    payload = f"open({str(marker)!r}, 'w')" if function == "eval" else f"touch {marker}"
    write_skops(tmp_path / "model.skops", call_node(module, function, payload))
    skops.io.load(tmp_path / "model.skops", trusted=[f"{module}.{function}"])
    assert marker.exists()


def test_a_pickle_in_place_of_the_skops_file_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    files = _model_dir(tmp_path)
    (files / "model.skops").write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(UntrustedArtifactError, match="not a skops file"):
        load_skops_model(files, "m version 1")
    assert not marker.exists()


def test_a_pickle_format_is_refused_from_the_description(tmp_path: Path) -> None:
    files = _model_dir(tmp_path, serialization_format="pickle", pickled_model="model.pkl")
    with pytest.raises(UntrustedArtifactError, match="only skops is loaded"):
        check_artifact_format(files, "m", "1")


def test_a_model_file_outside_its_folder_is_refused(tmp_path: Path) -> None:
    files = _model_dir(tmp_path, pickled_model="../elsewhere.skops")
    with pytest.raises(UntrustedArtifactError, match="outside its folder"):
        load_skops_model(files, "m version 1")


def test_a_damaged_skops_file_is_a_load_error(tmp_path: Path) -> None:
    files = _model_dir(tmp_path)
    (files / "model.skops").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelLoadError, match="cannot deserialise") as caught:
        load_skops_model(files, "m version 1")
    assert not isinstance(caught.value, UntrustedArtifactError)


def test_a_desist_model_loads_with_only_its_own_types(
    tmp_path: Path, every_model: dict[str, object]
) -> None:
    model = every_model["average"]
    files = _model_dir(tmp_path)  # MLmodel lists nothing: the file's own types are read
    skops.io.dump(model, files / "model.skops")
    loaded = load_skops_model(files, "m version 1")
    assert type(loaded) is type(model)
    assert directory_digest(files).startswith("sha256:")
