from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.schema import PROGRAMMES
from data.synthetic import SynthConfig, generate_cohort
from models.pathway_estimates import PathwayEstimates
from pipeline.config import DatasetConfig, PathwayModelConfig, PathwayTrainConfig
from pipeline.pathway_evaluation import (
    build_pathway_model,
    evaluate_pathways,
    overlap_table,
    policy_values,
    top_choice,
)


def _estimates(
    effect: np.ndarray, eligible: np.ndarray, in_overlap: np.ndarray
) -> PathwayEstimates:
    zeros = np.zeros_like(effect)
    return PathwayEstimates(
        programmes=PROGRAMMES[: effect.shape[1]],
        effect=effect,
        interval_low=zeros,
        interval_high=zeros,
        propensity=zeros + 0.5,
        in_overlap=in_overlap,
        eligible=eligible,
        recommended=eligible & in_overlap,
    )


def test_a_policy_value_is_the_mean_pseudo_outcome_of_its_choices_with_a_normal_interval() -> None:
    pseudo = np.array([[0.1, 0.3], [0.2, 0.0], [0.3, 0.1], [0.4, 0.2]])
    values = policy_values(
        pseudo, {"first": np.zeros(4, dtype=int), "mixed": np.array([1, 0, 0, 1])}
    )
    mean, low, high = values["first"]
    assert mean == pytest.approx(0.25)
    half = 1.96 * np.std([0.1, 0.2, 0.3, 0.4], ddof=1) / 2
    assert (low, high) == pytest.approx((0.25 - half, 0.25 + half))
    assert values["mixed"][0] == pytest.approx((0.3 + 0.2 + 0.3 + 0.2) / 4)


def test_the_top_choice_is_the_largest_effect_among_eligible_programmes() -> None:
    effect = np.array([[0.1, 0.5, 0.2], [0.4, 0.1, 0.3]])
    eligible = np.array([[True, False, True], [True, True, True]])
    estimates = _estimates(effect, eligible, np.ones_like(eligible))
    assert top_choice(estimates).tolist() == [2, 0]


def test_the_overlap_table_counts_eligible_people_outside_overlap_by_group() -> None:
    test = pd.DataFrame({"age": [20.0, 22.0, 40.0], "sex": ["female", None, "male"]})
    shape = (3, len(PROGRAMMES))
    eligible = np.zeros(shape, dtype=bool)
    in_overlap = np.zeros(shape, dtype=bool)
    eligible[:, 0] = [True, True, False]
    in_overlap[:, 0] = [True, False, True]
    table = overlap_table(test, _estimates(np.zeros(shape), eligible, in_overlap), ("sex",))
    assert set(table["programme"]) == {PROGRAMMES[0]}  # nobody eligible for the others
    young = table[table["group"] == "16-25"].iloc[0]
    assert young["eligible"] == 2 and young["outside_overlap_share"] == pytest.approx(0.5)
    assert "51+" not in set(table["group"]) and "36-50" not in set(table["group"])
    by_sex = table[table["attribute"] == "sex"].set_index("group")["outside_overlap_share"]
    assert by_sex.to_dict() == {"female": 0.0, "not recorded": 1.0}
    assert list(table.columns) == [
        "attribute",
        "group",
        "programme",
        "eligible",
        "outside_overlap_share",
    ]


def test_evaluating_a_fitted_model_gives_every_policy_and_programme_figure() -> None:
    config = PathwayTrainConfig(
        dataset=DatasetConfig(name="tiny", synthetic=SynthConfig(rows=3_000, seed=5)),
        model=PathwayModelConfig(max_iter=20),
    )
    frame, _ = generate_cohort(config.dataset.synthetic)  # type: ignore[arg-type]
    train_part, test = frame.iloc[:2_000], frame.iloc[2_000:]
    model = build_pathway_model(config).fit(
        train_part, train_part[config.target].to_numpy(dtype=int)
    )
    evaluation = evaluate_pathways(model, train_part, test, config)
    assert set(evaluation.values) == {
        "desist top-1",
        "random",
        "most common need",
        "needs-score rule (RNR)",
        "naive learner",
    }
    assert set(evaluation.effects) == set(PROGRAMMES)
    assert evaluation.metrics["policy_value_desist_top_1"] == evaluation.values["desist top-1"][0]
    assert evaluation.metrics["recommended_any_share"] == evaluation.recommended_share
    assert list(evaluation.policy_table["policy"]) == list(evaluation.values)
    assert evaluation.pseudo.shape == (len(test), len(PROGRAMMES))
