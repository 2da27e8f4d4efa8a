"""Loading served versions: a pathway version is warmed up, and proven able to answer, at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.support.registry import Store
from data.schema import EXAMPLE_ASSESSMENT, ID_FIELD
from models.contract.errors import ModelLoadError
from models.pathways import PathwayEffectModel
from serving.recommender import Recommender
from serving.registry_loader import load_pathway_model
from tests.support.serving import make_settings


def test_a_pathway_version_recommends_once_at_load_before_it_serves(
    pathway_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first recommendation pays one-off costs (bench_pathway_latency): the load pays them.
    asked: list[str] = []
    recommend = Recommender.recommend

    def counted(self: Recommender, assessments: Any) -> Any:
        asked.extend(item.subject_ref for item in assessments)
        return recommend(self, assessments)

    monkeypatch.setattr(Recommender, "recommend", counted)
    loaded = load_pathway_model(make_settings(pathway_store, tmp_path))
    assert asked == [EXAMPLE_ASSESSMENT[ID_FIELD]]
    assert loaded.version == "1"


def test_a_pathway_version_that_cannot_recommend_fails_its_load(
    pathway_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: PathwayEffectModel, table: Any) -> Any:
        raise ValueError("X has 3 features, but the model expects 14")

    monkeypatch.setattr(PathwayEffectModel, "estimate_with_risk", broken)
    with pytest.raises(ModelLoadError, match="cannot recommend for the example assessment"):
        load_pathway_model(make_settings(pathway_store, tmp_path))
