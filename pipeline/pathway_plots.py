"""Plots of the pathway-effect model: Qini curves, policy values, overlap."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from models.pathways import PathwayEstimates

# Programmes are drawn in a grid of this many panels a row.
_PANELS_A_ROW = 4


def plot_qini(pseudo: np.ndarray, estimates: PathwayEstimates) -> Figure:
    """Qini-style curve per programme: cumulative estimated reduction when referring by rank.

    People eligible for the programme are referred in order of their
    estimated effect; the curve adds up their doubly robust pseudo-outcomes
    (per 100 people of the pool). The straight line is referring in random
    order. A curve above its line means the ranking finds who benefits.
    """
    figure, panels = _programme_panels(estimates, 3.2)
    for j, (programme, axes) in enumerate(zip(estimates.programmes, panels, strict=True)):
        pool = estimates.eligible[:, j] & estimates.in_overlap[:, j]
        if pool.sum() < 2:
            axes.set_title(f"{programme}: no one in overlap")
            continue
        order = np.argsort(-estimates.effect[pool, j], kind="stable")
        gains = np.cumsum(pseudo[pool, j][order]) / pool.sum() * 100
        share = np.arange(1, order.size + 1) / order.size
        axes.plot(share, gains, label="by estimated effect")
        axes.plot([0, 1], [0, gains[-1]], linestyle="--", color="grey", label="random order")
        axes.set_title(programme.replace("_", " "))
        axes.set_xlabel("share of eligible people referred")
        axes.set_ylabel("re-offences prevented per 100")
        if j == 0:
            axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def plot_policy_values(values: dict[str, tuple[float, float, float]]) -> Figure:
    """Estimated mean risk reduction of each policy, with 95% intervals."""
    figure = Figure(figsize=(7, 3.5))
    axes = figure.add_subplot()
    names = list(values)
    means = np.array([values[n][0] for n in names]) * 100
    lows = means - np.array([values[n][1] for n in names]) * 100
    highs = np.array([values[n][2] for n in names]) * 100 - means
    axes.barh(names, means, xerr=[lows, highs], color="#0072b2")
    axes.invert_yaxis()
    axes.set_xlabel("estimated reduction in 12-month re-offending (percentage points)")
    axes.set_title("Value of recommending one programme per person (test split)")
    figure.tight_layout()
    return figure


def plot_overlap(estimates: PathwayEstimates, overlap: float) -> Figure:
    """Histogram of referral propensities per programme, with the overlap limits."""
    figure, panels = _programme_panels(estimates, 3)
    for j, (programme, axes) in enumerate(zip(estimates.programmes, panels, strict=True)):
        axes.hist(estimates.propensity[estimates.eligible[:, j], j], bins=40, range=(0, 1))
        for limit in (overlap, 1 - overlap):
            axes.axvline(limit, color="#d55e00", linestyle="--")
        axes.set_title(programme.replace("_", " "))
        axes.set_xlabel("estimated referral propensity")
    figure.tight_layout()
    return figure


def _programme_panels(
    estimates: PathwayEstimates, panel_height: float
) -> tuple[Figure, list[Axes]]:
    """Return a figure with one panel per programme, in programme order, four a row."""
    rows = (len(estimates.programmes) + _PANELS_A_ROW - 1) // _PANELS_A_ROW
    figure = Figure(figsize=(4 * _PANELS_A_ROW, panel_height * rows))
    panels = [
        figure.add_subplot(rows, _PANELS_A_ROW, j + 1) for j in range(len(estimates.programmes))
    ]
    return figure, panels
