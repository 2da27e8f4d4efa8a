from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import skops.io
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.synthetic import SynthConfig, generate_cohort
from models.calibration import ScoreCalibratedClassifier
from models.contract.artifact import directory_digest
from models.contract.errors import (
    ModelIntegrityError,
    ModelLoadError,
    UntrustedArtifactError,
    redact_credentials,
)
from models.contract.fetch import fetch_model
from models.contract.tags import CHAMPION, TAG_AUDIT_ONLY, TAG_DIGEST, TAG_FEATURES
from models.pathways import PathwayEffectModel
from models.risk import ScorecardSettings
from tests.support.crafted import Planted, call_node, write_mlmodel, write_skops
from tests.support.risk_models import fit_calibrated

FEATURES = ("age", "total_sanctions", "months_offence_free")
NAME = "crafted"


@pytest.fixture(scope="module")
def scorecard() -> ScoreCalibratedClassifier:
    cohort, _ = generate_cohort(SynthConfig(rows=2_000, seed=4))
    train, held_out = cohort.iloc[:1_400], cohort.iloc[1_400:]
    return fit_calibrated(ScorecardSettings(max_bins=8), train, held_out, FEATURES)


class Registry:
    """An empty MLflow registry in a folder, where crafted model folders become versions."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.uri = f"sqlite:///{home / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.client.create_registered_model(NAME)

    def folder(self, *, trusted: list[str] | None = None, **flavor: object) -> Path:
        files = self.home / f"model-{len(list(self.home.glob('model-*')))}"
        files.mkdir()
        return write_mlmodel(files, trusted=trusted, **flavor)

    def champion(self, files: Path, **tags: str) -> str:
        """Register ``files`` with their true digest (as if written by whoever crafted them)."""
        recorded = {
            TAG_DIGEST: directory_digest(files),
            TAG_FEATURES: json.dumps(list(FEATURES)),
            TAG_AUDIT_ONLY: json.dumps(["ethnicity"]),
            **tags,
        }
        version = self.client.create_model_version(NAME, source=files.as_uri(), tags=recorded)
        self.client.set_registered_model_alias(NAME, CHAMPION, version.version)
        return f"models:/{NAME}@{CHAMPION}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """One registry for the module (creating its store costs seconds); each test adds versions."""
    return Registry(tmp_path_factory.mktemp("registry"))


def fetch(registry: Registry, uri: str = f"models:/{NAME}@{CHAMPION}") -> object:
    return fetch_model(uri, ScoreCalibratedClassifier, tracking_uri=registry.uri)


def test_a_registered_desist_model_is_fetched_verified(
    registry: Registry, scorecard: ScoreCalibratedClassifier
) -> None:
    files = registry.folder()
    skops.io.dump(scorecard, files / "model.skops")
    uri = registry.champion(files)
    fetched = fetch_model(uri, ScoreCalibratedClassifier, tracking_uri=registry.uri)
    assert fetched.verified and fetched.label == f"{NAME} version 1"
    assert fetched.digest == directory_digest(files)
    assert fetched.bands.cutoffs  # the defaults: no bands tag recorded
    with pytest.raises(ModelLoadError, match="not a pathway model"):
        fetch_model(uri, PathwayEffectModel, tracking_uri=registry.uri)


def test_a_model_using_an_audit_only_field_is_refused(
    registry: Registry, scorecard: ScoreCalibratedClassifier
) -> None:
    files = registry.folder()
    skops.io.dump(scorecard, files / "model.skops")
    uri = registry.champion(files, **{TAG_AUDIT_ONLY: json.dumps(["age"])})
    with pytest.raises(ModelLoadError, match="uses audit-only fields"):
        fetch_model(uri, ScoreCalibratedClassifier, tracking_uri=registry.uri)


@pytest.mark.parametrize("listed", [True, False], ids=["listed-in-MLmodel", "not-listed"])
@pytest.mark.parametrize(("module", "function"), [("builtins", "eval"), ("os", "system")])
def test_a_registered_version_that_would_run_code_is_refused_and_runs_nothing(
    registry: Registry, tmp_path: Path, module: str, function: str, listed: bool
) -> None:
    marker = tmp_path / "ran"
    payload = f"open({str(marker)!r}, 'w')" if function == "eval" else f"touch {marker}"
    files = registry.folder(trusted=[f"{module}.{function}"] if listed else [])
    write_skops(files / "model.skops", call_node(module, function, payload))
    uri = registry.champion(files)
    with pytest.raises(UntrustedArtifactError, match=f"{module}.{function}"):
        fetch(registry, uri)
    assert not marker.exists()


def test_a_registered_pickle_is_refused_and_never_unpickled(
    registry: Registry, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    as_skops = registry.folder()
    (as_skops / "model.skops").write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(UntrustedArtifactError, match="not a skops file"):
        fetch(registry, registry.champion(as_skops))
    as_pickle = registry.folder(serialization_format="pickle", pickled_model="model.pkl")
    (as_pickle / "model.pkl").write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(UntrustedArtifactError, match="only skops is loaded"):
        fetch(registry, registry.champion(as_pickle))
    assert not marker.exists()


def test_a_version_without_a_digest_is_refused_before_download(registry: Registry) -> None:
    files = registry.folder()
    version = registry.client.create_model_version(NAME, source=files.as_uri(), tags={})
    registry.client.set_registered_model_alias(NAME, CHAMPION, version.version)
    with pytest.raises(ModelIntegrityError, match="no digest recorded"):
        fetch(registry)


@pytest.mark.parametrize(
    "uri",
    [
        "runs:/0123abcd/../../../../etc",
        "runs:/0123abcd/model/../../..",
        "runs:/0123abcd//etc/passwd",
        "runs:/0123abcd/%2e%2e/%2e%2e/secrets",
        "runs:/0123abcd/model\\..\\..\\x",
        "models://etc/passwd",
    ],
)
def test_a_model_uri_leaving_the_artifact_store_is_refused(registry: Registry, uri: str) -> None:
    with pytest.raises(ModelLoadError, match="leaves the artifact store"):
        fetch(registry, uri)


def test_errors_never_quote_a_password(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise MlflowException("cannot reach postgresql://desist:s3cret@db.internal:5432/mlflow")

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", refuse)
    with pytest.raises(ModelLoadError, match="cannot resolve") as caught:
        fetch(registry)
    assert "s3cret" not in str(caught.value) and "desist:***@db.internal" in str(caught.value)
    redacted = redact_credentials("https://a:b@h/x and http://c:d@e")
    assert redacted == "https://a:***@h/x and http://c:***@e"
