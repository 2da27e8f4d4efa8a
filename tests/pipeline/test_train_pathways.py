from __future__ import annotations

from pathlib import Path

import pytest

from data.synthetic import SynthConfig
from pipeline.config import DatasetConfig, PathwayModelConfig, PathwayTrainConfig
from pipeline.registry import TAG_DIGEST
from pipeline.tracking import Tracker
from pipeline.train_pathways import TAG_POLICY_VALUE, train


def test_pathway_job_logs_estimates_plots_and_registers(tracker: Tracker) -> None:
    config = PathwayTrainConfig(
        dataset=DatasetConfig(name="tiny", synthetic=SynthConfig(rows=6_000, seed=5)),
        model=PathwayModelConfig(max_iter=40),
    )
    result = train(config, tracker=tracker)
    run = tracker.get_run(result.run_id)
    metrics = run.data.metrics
    for key in (
        "policy_value_desist_top_1",
        "policy_value_needs_score_rule",
        "policy_value_naive_learner",
        "average_effect_education_employment",
        "average_effect_education_employment_ci_low",
        "outside_overlap_share_princes_trust",
        "recommended_any_share",
    ):
        assert key in metrics, key
    client = tracker.client()
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert plots == {"plots/qini_curves.png", "plots/policy_values.png", "plots/overlap.png"}
    overlap = Path(client.download_artifacts(result.run_id, "tables/overlap_by_group.csv"))
    header = overlap.read_text().splitlines()[0]
    assert header == "attribute,group,programme,eligible,outside_overlap_share"
    assert {"ethnicity", "sex", "age band"} <= {
        line.split(",")[0] for line in overlap.read_text().splitlines()[1:]
    }
    version = client.get_model_version("desist-pathways", result.version)
    assert version.tags[TAG_DIGEST] == result.artifact_digest
    assert float(version.tags[TAG_POLICY_VALUE]) == pytest.approx(
        result.policy_values["desist top-1"][0], abs=1e-6
    )
