"""A model registry to tamper with: add versions with changed tags or files, move the alias.

:func:`train_small_champions` fills one with small, seeded champions (the
serving tests' registries and ``bench_fuzz``'s).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from models.contract.artifact import directory_digest
from models.contract.tags import CHAMPION, TAG_DIGEST

MODEL = "desist-risk"
PATHWAY_MODEL = "desist-pathways"


@dataclass(frozen=True)
class Store:
    """A registry home with version 1 of desist-risk as champion."""

    home: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def add_version(self, **tag_changes: str) -> str:
        """Register the champion's files again as a new version (optionally with changed tags)."""
        client = self.client()
        current = client.get_model_version(MODEL, "1")
        tags = {**current.tags, **tag_changes}
        # The files' own location: a models:/ source would be resolved through MLflow's
        # process-global tracking URI.
        location = client.get_model_version_download_uri(MODEL, "1")
        created = client.create_model_version(
            MODEL, source=location, run_id=current.run_id, tags=tags
        )
        return str(created.version)

    def add_version_from(self, files: Path, *, retag: bool = False) -> str:
        """Register the model files in ``files`` as a new version with the champion's tags.

        With ``retag`` the digest tag is recomputed for the new files (as if
        whoever changed them could also write the registry); otherwise it is
        the champion's, which the changed files no longer match.
        """
        client = self.client()
        current = client.get_model_version(MODEL, "1")
        tags = dict(current.tags)
        if retag:
            tags[TAG_DIGEST] = directory_digest(files)
        created = client.create_model_version(
            MODEL, source=files.as_uri(), run_id=current.run_id, tags=tags
        )
        return str(created.version)

    def copy_champion_files(self, to: Path) -> Path:
        """Copy version 1's model files to ``to`` (to tamper with them)."""
        location = self.client().get_model_version_download_uri(MODEL, "1")
        source = Path(location.removeprefix("file://"))
        shutil.copytree(source, to)
        return to

    def set_champion(self, version: str) -> None:
        self.client().set_registered_model_alias(MODEL, CHAMPION, version)


def train_small_champions(home: Path, *, pathways: bool) -> Store:
    """Train and promote a small scorecard (and a small pathway model) into ``home``.

    Seeded and small (seconds): gates loose enough that both are promoted.
    """
    # Imported here: tampering with a registry needs none of the training code.
    from benchmarks.support.configs import (
        LOOSE_GATES,
        LOOSE_PATHWAY_GATES,
        small_config,
        tiny_pathway_config,
    )
    from data.schema import NEVER_FEATURES
    from models.risk import ScorecardSettings
    from pipeline.registry import promote
    from pipeline.tracking import Tracker
    from pipeline.train_pathways import train as train_pathways
    from pipeline.train_risk import train

    tracker = Tracker.for_home(home)
    risk = train(small_config(models=(ScorecardSettings(),)), tracker=tracker)
    if not promote(tracker, MODEL, risk.version, LOOSE_GATES, (), actor="tests").promoted:
        raise RuntimeError("the small scorecard was not promoted")
    if pathways:
        trained = train_pathways(tiny_pathway_config(), tracker=tracker)
        decision = promote(
            tracker,
            PATHWAY_MODEL,
            trained.version,
            LOOSE_PATHWAY_GATES,
            NEVER_FEATURES,
            actor="tests",
        )
        if not decision.promoted:
            raise RuntimeError("the small pathway model was not promoted")
    return Store(home)
