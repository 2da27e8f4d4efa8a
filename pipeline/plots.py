"""Figures for training runs and model cards: ROC, reliability, bands, groups, effects.

Every function builds a :class:`matplotlib.figure.Figure` directly, without
pyplot, so no global state (backend, current figure, open-figure registry) is
touched and nothing has to be closed. The caller saves it with
``fig.savefig(path)`` or hands it to ``mlflow.log_figure``. Each figure is
drawn by its own Agg canvas (:func:`new_figure`), the non-interactive backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from pipeline.calibration_metrics import ECE_BINS, check_scores, reliability_bins

# Colour-blind-safe pair (Okabe-Ito): orange for "predicted"/positive
# outcomes, blue for "observed"/negative ones, used consistently across figures.
_ORANGE = "#E69F00"
_BLUE = "#0072B2"
_GREY = "#999999"
_RAISES = "#D55E00"
_LOWERS = "#009E73"


def new_figure(figsize: tuple[float, float]) -> Figure:
    """Return an empty figure of ``figsize`` inches, drawn by its own Agg canvas.

    A bare :class:`~matplotlib.figure.Figure` gets a placeholder canvas: laying
    it out (``tight_layout``) makes one Agg renderer and every ``savefig``
    another, each measuring every label's text again. With its Agg canvas
    from the start, the layout and every save at the figure's resolution
    share one renderer and its text measurements; the pixels are the same.
    """
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def plot_roc(y: npt.ArrayLike, p: npt.ArrayLike, *, label: str) -> Figure:
    """Plot the ROC curve of one score with its AUC.

    Parameters
    ----------
    y, p
        Observed outcomes (0 or 1) and predicted probabilities.
    label
        Name of the score, shown in the legend.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: the curve and the chance diagonal.

    Raises
    ------
    ValueError
        If the inputs are invalid or only one outcome occurs.
    """
    return plot_roc_comparison(y, {label: np.asarray(p)})


def plot_roc_comparison(y: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike]) -> Figure:
    """Plot the ROC curves of several scores of the same people.

    Parameters
    ----------
    y
        Observed outcomes, 0 or 1.
    scores
        Score name to probabilities, each aligned with ``y``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: a curve per score (AUC in the legend) and the chance diagonal.

    Raises
    ------
    ValueError
        If ``scores`` is empty, a score is invalid, or only one outcome occurs.
    """
    if not scores:
        raise ValueError("scores is empty: nothing to plot")
    fig = new_figure((5.5, 5))
    ax = fig.add_subplot()
    for name, p in scores.items():
        y_arr, p_arr = check_scores(y, p)
        if y_arr.min() == y_arr.max():
            raise ValueError("a ROC curve needs both outcomes; y holds only one")
        fpr, tpr, _ = roc_curve(y_arr, p_arr)
        auc = roc_auc_score(y_arr, p_arr)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color=_GREY, label="chance")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="False positive rate (did not re-offend, flagged)",
        ylabel="True positive rate (re-offended, flagged)",
        title="ROC curve" if len(scores) == 1 else "ROC curves",
    )
    ax.set_aspect("equal")
    return _finish(fig, ax, loc="lower right")


def plot_reliability(y: npt.ArrayLike, p: npt.ArrayLike, *, bins: int = ECE_BINS) -> Figure:
    """Plot observed against predicted rates per equal-mass bin, with the score histogram.

    Parameters
    ----------
    y, p
        Observed outcomes (0 or 1) and predicted probabilities.
    bins
        Number of equal-mass bins (see :func:`pipeline.calibration_metrics.reliability_bins`).

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: above, observed rate against mean predicted per bin and the
        diagonal of perfect calibration; below, a histogram of ``p``.
    """
    y_arr, p_arr = check_scores(y, p)
    table = reliability_bins(y_arr, p_arr, bins)
    fig = new_figure((5.5, 6.5))
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    top.plot([0, 1], [0, 1], linestyle="--", color=_GREY, label="perfect calibration")
    top.plot(
        table["mean_predicted"],
        table["observed_rate"],
        marker="o",
        color=_BLUE,
        label=f"{len(table)} equal-size groups",
    )
    top.set(
        xlim=(0, 1),
        ylim=(0, 1),
        ylabel="Observed re-offending rate",
        title="Reliability: predicted against observed",
    )
    top.legend(loc="upper left")
    top.tick_params(labelbottom=False)
    bottom.hist(p_arr, bins=np.linspace(0, 1, 41).tolist(), color=_ORANGE)
    bottom.set(xlabel="Predicted probability", ylabel="People")
    fig.tight_layout()
    return fig


def plot_score_distribution(y: npt.ArrayLike, p: npt.ArrayLike) -> Figure:
    """Plot the distribution of scores for people who did and did not re-offend.

    Parameters
    ----------
    y, p
        Observed outcomes (0 or 1) and predicted probabilities.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with two step histograms, each scaled to its own total so
        groups of different size can be compared.
    """
    y_arr, p_arr = check_scores(y, p)
    fig = new_figure((6, 4))
    ax = fig.add_subplot()
    edges = np.linspace(0, 1, 41).tolist()
    for outcome, name, colour in ((0, "did not re-offend", _BLUE), (1, "re-offended", _ORANGE)):
        values = p_arr[y_arr == outcome]
        if len(values):
            ax.hist(
                values,
                bins=edges,
                weights=np.full(len(values), 1 / len(values)),
                histtype="step",
                linewidth=1.8,
                color=colour,
                label=f"{name} (n = {len(values):,})",
            )
    ax.set(
        xlim=(0, 1),
        xlabel="Predicted probability",
        ylabel="Share of the outcome group",
        title="Scores by outcome",
    )
    return _finish(fig, ax)


def plot_band_table(band_table: pd.DataFrame) -> Figure:
    """Plot observed and mean predicted rates per risk band.

    Parameters
    ----------
    band_table
        :attr:`pipeline.evaluation.Evaluation.band_table`: columns ``band``,
        ``n``, ``mean_predicted``, ``observed_rate``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes of paired bars; the band labels carry their sizes. An empty
        band has no bars.
    """
    _require_columns(band_table, ("band", "n", "mean_predicted", "observed_rate"), "band_table")
    fig = new_figure((6.5, 4))
    ax = fig.add_subplot()
    x = np.arange(len(band_table))
    width = 0.38
    ax.bar(x - width / 2, band_table["mean_predicted"], width, color=_ORANGE, label="predicted")
    ax.bar(x + width / 2, band_table["observed_rate"], width, color=_BLUE, label="observed")
    sizes = zip(band_table["band"], band_table["n"], strict=True)
    ax.set_xticks(x, [f"{band}\nn = {int(n):,}" for band, n in sizes])
    ax.set(ylim=(0, 1), ylabel="Re-offending rate", title="Predicted and observed rate by band")
    return _finish(fig, ax, loc="upper left")


def plot_feature_effects(effects: pd.DataFrame) -> Figure:
    """Plot each feature's contribution to the log-odds, one panel per feature.

    Parameters
    ----------
    effects
        Columns ``feature``, ``level`` (text) and ``contribution``
        (log-odds). Features and levels are drawn in the order given.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per feature with a horizontal bar per level, all on the same
        x scale so features can be compared; bars that raise the risk and
        bars that lower it are coloured differently.

    Raises
    ------
    ValueError
        If a column is missing.
    """
    _require_columns(effects, ("feature", "level", "contribution"), "effects")
    features = list(dict.fromkeys(effects["feature"]))
    if not features:
        fig = new_figure((5, 2))
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "No feature effects to show", ha="center", va="center")
        ax.set_axis_off()
        return fig
    sizes = [int((effects["feature"] == f).sum()) for f in features]
    limit = float(np.nanmax(np.abs(effects["contribution"].to_numpy(dtype=float))))
    limit = 1.1 * limit if limit > 0 else 1.0
    fig = new_figure((7, 1.0 + 0.3 * sum(sizes) + 0.45 * len(features)))
    grid = fig.add_gridspec(len(features), 1, height_ratios=[s + 1 for s in sizes])
    for i, feature in enumerate(features):
        rows = effects[effects["feature"] == feature]
        ax = fig.add_subplot(grid[i])
        values = rows["contribution"].to_numpy(dtype=float)
        positions = np.arange(len(rows))[::-1]  # first level at the top
        ax.barh(
            positions,
            values,
            color=[_RAISES if v > 0 else _LOWERS for v in values],
            height=0.7,
        )
        ax.set_yticks(positions, [str(level) for level in rows["level"]])
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlim(-limit, limit)
        ax.set_title(str(feature), loc="left", fontsize="medium")
        _format_effect_axis(ax, last=i == len(features) - 1)
    fig.suptitle("Contribution to the log-odds of re-offending")
    fig.tight_layout()
    return fig


def plot_group_calibration(group_table: pd.DataFrame) -> Figure:
    """Plot predicted against observed rate per group, and the gap with its interval.

    Parameters
    ----------
    group_table
        :attr:`pipeline.evaluation.Evaluation.group_table`.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes sharing the group rows: left, mean predicted and observed
        rate; right, the calibration gap (predicted minus observed) with its
        95 % interval and a line at zero. A gap right of zero means the
        group's risk is over-stated.
    """
    _require_columns(
        group_table,
        (
            "attribute",
            "group",
            "n",
            "mean_predicted",
            "observed_rate",
            "calibration_gap",
            "calibration_gap_ci_low",
            "calibration_gap_ci_high",
        ),
        "group_table",
    )
    rows = len(group_table)
    fig = new_figure((9, 1.2 + 0.35 * max(rows, 1)))
    left = fig.add_subplot(1, 2, 1)
    right = fig.add_subplot(1, 2, 2, sharey=left)
    positions = np.arange(rows)[::-1]
    labels = [
        f"{a}: {g} (n = {n:,})"
        for a, g, n in zip(
            group_table["attribute"], group_table["group"], group_table["n"], strict=True
        )
    ]
    left.scatter(group_table["mean_predicted"], positions, color=_ORANGE, label="predicted")
    left.scatter(group_table["observed_rate"], positions, color=_BLUE, marker="s", label="observed")
    left.set_yticks(positions, labels)
    left.set(xlabel="Re-offending rate", title="Predicted and observed")
    left.set_xlim(0, 1)
    left.legend(loc="lower right")
    gap = group_table["calibration_gap"].to_numpy(dtype=float)
    low = group_table["calibration_gap_ci_low"].to_numpy(dtype=float)
    high = group_table["calibration_gap_ci_high"].to_numpy(dtype=float)
    # Without an interval (no bootstrap) draw the point alone rather than a zero-width bar.
    errors = np.vstack([np.nan_to_num(gap - low), np.nan_to_num(high - gap)])
    right.errorbar(gap, positions, xerr=errors, fmt="o", color="black", capsize=3)
    right.axvline(0, color=_GREY, linestyle="--")
    right.set(xlabel="Predicted minus observed (95% interval)", title="Calibration gap")
    right.tick_params(labelleft=False)
    fig.suptitle("Calibration by group")
    fig.tight_layout()
    return fig


def _finish(fig: Figure, legend_on: Axes, **legend: Any) -> Figure:
    """Draw the legend on ``legend_on``, fit the layout and return ``fig``."""
    legend_on.legend(**legend)
    fig.tight_layout()
    return fig


def _format_effect_axis(ax: Axes, *, last: bool) -> None:
    ax.tick_params(axis="y", labelsize="small")
    if last:
        ax.set_xlabel("Log-odds contribution (right: higher risk)")
    else:
        ax.tick_params(axis="x", labelbottom=False)


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the columns {', '.join(missing)}")
