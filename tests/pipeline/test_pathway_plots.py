from __future__ import annotations

import numpy as np
import pytest

from models.pathways import PathwayEstimates
from pipeline.pathway_plots import plot_overlap, plot_policy_values, plot_qini


@pytest.fixture(scope="module")
def estimates() -> PathwayEstimates:
    """Five programmes; nobody is eligible for the last one."""
    rng = np.random.default_rng(0)
    n, k = 300, 5
    eligible = rng.random((n, k)) < 0.7
    eligible[:, 4] = False
    return PathwayEstimates(
        programmes=("drug_treatment", "housing", "employment", "mentoring", "unused"),
        effect=rng.normal(0.02, 0.03, (n, k)),
        interval_low=np.zeros((n, k)),
        interval_high=np.zeros((n, k)),
        propensity=rng.uniform(0, 1, (n, k)),
        in_overlap=rng.random((n, k)) < 0.8,
        eligible=eligible,
        recommended=np.zeros((n, k), dtype=bool),
    )


def test_qini_has_a_panel_per_programme_and_says_when_nobody_is_in_overlap(
    estimates: PathwayEstimates,
) -> None:
    pseudo = np.random.default_rng(1).normal(0.02, 0.2, estimates.effect.shape)
    fig = plot_qini(pseudo, estimates)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "drug treatment",
        "housing",
        "employment",
        "mentoring",
        "unused: no one in overlap",
    ]
    first = fig.axes[0]
    assert len(first.get_lines()) == 2  # by estimated effect, and random order
    curve, random_order = (line.get_ydata() for line in first.get_lines())
    assert random_order[-1] == pytest.approx(curve[-1])  # both end at the pool's total
    assert first.get_legend() is not None and fig.axes[1].get_legend() is None


def test_overlap_draws_both_limits_per_programme(estimates: PathwayEstimates) -> None:
    fig = plot_overlap(estimates, 0.05)
    assert len(fig.axes) == 5
    limits = [line.get_xdata()[0] for line in fig.axes[0].get_lines()]
    assert limits == pytest.approx([0.05, 0.95])


def test_policy_values_are_percentage_points_with_intervals() -> None:
    fig = plot_policy_values({"best": (0.02, 0.01, 0.03), "none": (0.0, -0.01, 0.01)})
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["best", "none"]
    widths = sorted(bar.get_width() for bar in ax.patches)
    assert widths == pytest.approx([0.0, 2.0])
