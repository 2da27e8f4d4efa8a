from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data.schema import NEVER_FEATURES, PROGRAMMES
from data.synthetic_world import SynthConfig
from models.contract.tags import CHAMPION, TAG_DIGEST, TAG_POLICY_VALUE
from pipeline.config import DatasetConfig, PathwayGateConfig, PathwayModelConfig, PathwayTrainConfig
from pipeline.registry import VersionFigures, evaluate_gates, promote
from pipeline.tracking import Tracker
from pipeline.train_pathways import train


def test_pathway_job_logs_estimates_plots_and_registers(tracker: Tracker) -> None:
    config = PathwayTrainConfig(
        dataset=DatasetConfig(name="tiny", synthetic=SynthConfig(rows=6_000, seed=5)),
        model=PathwayModelConfig(max_iter=40),
    )
    result = train(config, tracker=tracker)
    logged = tracker.get_run(result.run_id).data.metrics.keys()
    expected = {
        "policy_value_desist_top_1",
        "policy_value_needs_score_rule",
        "policy_value_naive_learner",
        "average_effect_education_employment",
        "average_effect_education_employment_ci_low",
        "outside_overlap_share_princes_trust",
        "recommended_any_share",
    }
    assert expected <= logged, sorted(expected - logged)
    client = tracker.client()
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert plots == {"plots/qini_curves.png", "plots/policy_values.png", "plots/overlap.png"}
    overlap = Path(client.download_artifacts(result.run_id, "tables/overlap_by_group.csv"))
    header = overlap.read_text().splitlines()[0]
    assert header == "attribute,group,programme,eligible,outside_overlap_share"
    assert {"ethnicity", "sex", "age band"} <= {
        line.split(",")[0] for line in overlap.read_text().splitlines()[1:]
    }
    # The served rule is in the run: learner, gate, margin and default, and every
    # candidate's out-of-fold value with the served one marked.
    tags = tracker.get_run(result.run_id).data.tags
    assert tags["pathway_learner"] in {"dr", "plugin"}
    assert tags["pathway_gate"] in {"on", "off"}
    assert float(tags["pathway_switch_margin"]) >= 0
    assert tags["pathway_default_programme"] in {*PROGRAMMES, "none"}
    selection = pd.read_csv(client.download_artifacts(result.run_id, "tables/policy_selection.csv"))
    assert set(selection["learner"]) == {"dr", "plugin"}  # learner="auto" weighs both
    served = selection.loc[selection["served"]]
    assert len(served) == 1 and served["learner"].item() == tags["pathway_learner"]
    version = client.get_model_version("desist-pathways", result.version)
    assert version.tags[TAG_DIGEST] == result.artifact_digest
    assert float(version.tags[TAG_POLICY_VALUE]) == pytest.approx(
        result.policy_values["desist top-1"][0], abs=1e-6
    )

    # The first version has no champion to beat; it must still beat the needs-score rule.
    gates = PathwayGateConfig(min_gain_over_rnr=-1.0)
    decision = promote(tracker, "desist-pathways", result.version, gates, NEVER_FEATURES, actor="t")
    assert decision.promoted
    assert str(client.get_model_version_by_alias("desist-pathways", CHAMPION).version) == "1"


def _figures(version: str = "2", **changes: object) -> VersionFigures:
    base = {
        "version": version,
        "policy_value": 0.12,
        "rnr_value": 0.08,
        "features": ("age", "unemployed"),
        "audit_only": ("ethnicity", "sex"),
    }
    return VersionFigures(**{**base, **changes})  # type: ignore[arg-type]


def test_pathway_gates_refuse_worse_than_champion_or_rule_or_audit_only_feature() -> None:
    gates = PathwayGateConfig(value_tolerance=0.005, min_gain_over_rnr=0.01)
    assert evaluate_gates(_figures(), _figures("1"), gates, NEVER_FEATURES).passed

    def failed(candidate: VersionFigures) -> list[str]:
        decision = evaluate_gates(candidate, _figures("1"), gates, NEVER_FEATURES)
        return [c.name for c in decision.checks if not c.passed]

    assert failed(_figures(policy_value=0.10, rnr_value=0.05)) == [
        "policy_value_not_worse_than_champion"
    ]
    assert failed(_figures(rnr_value=0.115)) == ["beats_needs_score_rule"]
    assert failed(_figures(features=("age", "ethnicity"))) == ["no_audit_only_feature"]
