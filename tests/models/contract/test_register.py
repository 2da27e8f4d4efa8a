from __future__ import annotations

from pathlib import Path

from models.contract.artifact import directory_digest
from models.contract.register import logged_model_digest, register_version
from models.contract.tags import VersionTags
from pipeline.tracking import Tracker


def test_a_version_is_registered_with_exactly_its_typed_tags(tmp_path: Path) -> None:
    files = tmp_path / "model"
    files.mkdir()
    (files / "MLmodel").write_text("flavors: {}\n")
    (files / "model.skops").write_bytes(b"PK\x03\x04 stand-in")
    tracker = Tracker.for_home(tmp_path / "home")
    with tracker.activate():
        digest = logged_model_digest(files.as_uri())
        tags = VersionTags(
            run_id="r1",
            features=("age",),
            audit_only=("ethnicity",),
            digest=digest,
            trained_at="2026-12-01T22:00:00+00:00",
            estimated_policy_value=0.1,
            estimated_rnr_value=0.05,
        )
        assert register_version(files.as_uri(), "desist-pathways", tags) == "1"
    assert digest == directory_digest(files)
    version = tracker.client().get_model_version("desist-pathways", "1")
    assert version.tags == tags.to_mlflow_tags()
    assert VersionTags.from_mlflow_tags(version.tags) == tags
