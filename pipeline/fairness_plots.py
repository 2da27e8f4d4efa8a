"""Figures of a fairness audit: error rates and calibration within groups.

Each function takes a :class:`~pipeline.fairness.FairnessAudit` and builds a
:class:`matplotlib.figure.Figure` without pyplot, as :mod:`pipeline.plots` does.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pipeline.fairness import METRIC_LABELS, FairnessAudit, too_few
from pipeline.plots import new_figure

_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")


def plot_error_rates(audit: FairnessAudit, attribute: str) -> Figure:
    """Plot FPR, FNR and selection rate by group for every model and cut-off, with intervals."""
    table = audit.by_group[
        (audit.by_group["attribute"] == attribute)
        & audit.by_group["metric"].isin(["fpr", "fnr", "selection_rate"])
    ]
    series = list(dict.fromkeys(zip(table["model"], table["operating_point"], strict=True)))
    groups = list(dict.fromkeys(table["group"]))
    sizes = table.groupby("group", sort=False)["n"].first()
    # A group too small to judge has no points (its figures are NaN); its label says why.
    names = [
        f"{g}: {too_few(int(sizes[g]))}" if sizes[g] < audit.min_group_size else g for g in groups
    ]
    fig = new_figure((12, 1.5 + 0.45 * len(groups) * max(len(series), 1) / 2))
    for column, metric in enumerate(("fpr", "fnr", "selection_rate")):
        ax = fig.add_subplot(1, 3, column + 1)
        for i, (model, point) in enumerate(series):
            part = table[
                (table["model"] == model)
                & (table["operating_point"] == point)
                & (table["metric"] == metric)
            ].set_index("group")
            y_pos = np.arange(len(groups)) * (len(series) + 1) + i
            values = part.reindex(groups)
            err = np.vstack(
                [
                    np.nan_to_num(values["value"] - values["ci_low"]),
                    np.nan_to_num(values["ci_high"] - values["value"]),
                ]
            )
            ax.errorbar(
                values["value"],
                y_pos,
                xerr=err,
                fmt="o",
                color=_COLOURS[i % len(_COLOURS)],
                capsize=2,
                label=f"{model} ({point})",
            )
        ticks = np.arange(len(groups)) * (len(series) + 1) + (len(series) - 1) / 2
        ax.set_yticks(ticks, names if column == 0 else [""] * len(groups))
        ax.set(xlim=(0, 1), title=METRIC_LABELS[metric])
        ax.invert_yaxis()
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize="small")
    fig.suptitle(f"Error rates by {attribute} at each operating cut-off (95% intervals)")
    # Room below the panels for the legend: one row per two series.
    fig.tight_layout(rect=(0, 0.05 + 0.035 * ((len(series) + 1) // 2), 1, 0.95))
    return fig


def plot_calibration_by_decile(audit: FairnessAudit, attribute: str, min_n: int) -> Figure:
    """Plot observed rate against mean predicted, per decile of score, per group and model."""
    table = audit.calibration_by_decile[audit.calibration_by_decile["attribute"] == attribute]
    models = list(dict.fromkeys(table["model"]))
    fig = new_figure((5 * max(len(models), 1), 4.8))
    for i, model in enumerate(models):
        ax = fig.add_subplot(1, max(len(models), 1), i + 1)
        part = table[table["model"] == model]
        for j, group in enumerate(dict.fromkeys(part["group"])):
            rows = part[(part["group"] == group) & (part["n"] >= 1)]
            if rows["n"].sum() < min_n:
                continue
            ax.plot(
                rows["mean_predicted"],
                rows["observed_rate"],
                marker="o",
                color=_COLOURS[j % len(_COLOURS)],
                label=f"{group} (n = {int(rows['n'].sum()):,})",
            )
        ax.plot([0, 1], [0, 1], linestyle="--", color="#999999")
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="Mean predicted (per decile of score)",
            ylabel="Observed rate",
            title=model,
        )
        ax.legend(loc="upper left", fontsize="small")
    fig.suptitle(f"Calibration within groups of {attribute}")
    fig.tight_layout()
    return fig
