"""Confidence groups of pathway estimates: cut by estimate, summarised by pseudo-outcome."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from models.pathway_confidence import MIN_GROUP_SIZE, confidence_groups, family_wise_z


def test_the_family_wise_level_is_shared_by_every_test() -> None:
    assert family_wise_z(1) == pytest.approx(norm.ppf(0.95))
    assert family_wise_z(80) == pytest.approx(norm.ppf(1 - 0.05 / 80))
    assert family_wise_z(80) > family_wise_z(8)


def test_each_group_summarises_the_pseudo_outcomes_of_its_estimates() -> None:
    rng = np.random.default_rng(5)
    estimated = np.repeat([0.0, 0.1], 500)
    pseudo = np.where(estimated > 0, 0.2, -0.05) + rng.normal(0, 0.5, estimated.size)
    groups = confidence_groups(estimated, pseudo, n_groups=2, z=3.0)
    assert groups.edges.tolist() == [0.05]
    for g, values in enumerate((pseudo[:500], pseudo[500:])):
        error = values.std(ddof=1) / np.sqrt(values.size)
        assert groups.low[g] == pytest.approx(values.mean() - 1.96 * error)
        assert groups.high[g] == pytest.approx(values.mean() + 1.96 * error)
        assert groups.floor[g] == pytest.approx(values.mean() - 3.0 * error)
    assert groups.floor[0] < 0 < groups.floor[1]


def test_a_group_too_small_to_judge_gets_no_interval() -> None:
    estimated = np.r_[np.zeros(MIN_GROUP_SIZE - 1), np.ones(200)]
    groups = confidence_groups(estimated, np.ones(estimated.size), n_groups=2, z=2.0)
    assert groups.edges.size == 1
    assert np.isnan([groups.low[0], groups.high[0], groups.floor[0]]).all()
    assert groups.low[1] == groups.high[1] == groups.floor[1] == 1.0
