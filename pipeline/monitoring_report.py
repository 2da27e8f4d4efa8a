"""The monitoring run's HTML report and plots.

Figures are built without pyplot (as :mod:`pipeline.plots`), and the report
is one self-contained page: alerts first, in words naming what moved, then
the checks, drift, calibration on matured outcomes and override rates.
"""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.drift import SCORE
from pipeline.monitoring import MonitorResult
from pipeline.monitoring_config import MonitoringConfig
from pipeline.plots import plot_band_table, plot_group_calibration, plot_reliability

_BLUE = "#0072B2"
_ORANGE = "#E69F00"
_RED = "#D55E00"
_GREY = "#999999"


def plot_drift(drift: pd.DataFrame, alerted: set[str], floor: float) -> Figure:
    """Plot each feature's PSI (and the score's), alerting ones in red, with the floor."""
    ordered = drift.sort_values("psi")
    fig = Figure(figsize=(7, max(3.0, 0.28 * len(ordered) + 1)))
    ax = fig.add_subplot()
    names = [str(f) for f in ordered["feature"]]
    colours = [_RED if n in alerted else (_ORANGE if n == SCORE else _BLUE) for n in names]
    ax.barh(names, ordered["psi"], color=colours)
    ax.axvline(floor, color=_GREY, linestyle="--", label=f"floor {floor:g}")
    ax.set(xlabel="Population stability index against training", title="Input drift")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_score_shift(score_bins: pd.DataFrame) -> Figure:
    """Plot the share of scores per reference bin: test split against now."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    x = np.arange(len(score_bins))
    ax.bar(x - 0.2, score_bins["reference_share"], 0.4, color=_GREY, label="test split")
    ax.bar(x + 0.2, score_bins["share"], 0.4, color=_ORANGE, label="monitored")
    ax.set_xticks(x, score_bins["bin"], rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="Share of scores", title="Score distribution: reference bins")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_override_rates(by_band: pd.DataFrame, limit: float) -> Figure:
    """Plot the override rate of each band with its 95 % interval and the alert limit."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    x = np.arange(len(by_band))
    rate = by_band["rate"].to_numpy(dtype=float)
    errors = np.vstack([rate - by_band["ci_low"], by_band["ci_high"] - rate])
    ax.bar(x, rate, yerr=errors, color=_BLUE, capsize=4)
    ax.axhline(limit, color=_RED, linestyle="--", label=f"limit {limit:.0%}")
    ax.set_xticks(
        x, [f"{b}\nn = {n:,}" for b, n in zip(by_band["band"], by_band["decided"], strict=True)]
    )
    ax.set(ylabel="Share of decisions overridden", title="Overrides by band")
    ax.legend()
    fig.tight_layout()
    return fig


def build_figures(
    result: MonitorResult, config: MonitoringConfig | None = None
) -> dict[str, Figure]:
    """Return the run's figures by name (only those its data allow)."""
    config = config or MonitoringConfig()
    alerted = set(
        result.checks.loc[
            result.checks["alert"] & result.checks["kind"].isin(("drift", "score_shift")), "subject"
        ]
    )
    figures = {"drift": plot_drift(result.drift, alerted, config.psi_floor)}
    if len(result.score_bins):
        figures["score_distribution"] = plot_score_shift(result.score_bins)
    if result.evaluation is not None:
        y = result.matured["outcome"].to_numpy(dtype=np.int64)
        figures["reliability"] = plot_reliability(y, result.matured[SCORE].to_numpy(float))
        figures["bands"] = plot_band_table(result.evaluation.band_table)
        if len(result.evaluation.group_table):
            figures["group_calibration"] = plot_group_calibration(result.evaluation.group_table)
    if len(result.overrides_by_band):
        figures["overrides"] = plot_override_rates(
            result.overrides_by_band, config.max_override_rate
        )
    return figures


def figure_pngs(figures: dict[str, Figure]) -> dict[str, bytes]:
    """Return each figure as PNG bytes (rendered once, for the report and the run)."""
    out = {}
    for name, fig in figures.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        out[name] = buffer.getvalue()
    return out


def _fmt(value: object) -> str:
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return "n/a"
        return f"{number:.2e}" if 0 < abs(number) < 1e-3 else f"{number:.3f}"
    return str(value)


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_lines(result: MonitorResult, config: MonitoringConfig) -> list[str]:
    """Return the report's key figures in words."""
    lines = [
        f"{result.n_scored:,} scores of {result.model} version {result.version}; "
        f"{result.n_matured:,} people with a matured {config.window_months}-month outcome; "
        f"{result.n_decided:,} scores with a practitioner's decision.",
        f"{len(result.checks)} checks, each tested at {result.level:.2g} so that an unchanged "
        f"population alerts in at most {config.false_alarm_rate:.0%} of runs; an alert also "
        "needs a change at least as large as the check's floor.",
    ]
    if result.evaluation is None:
        lines.append(
            f"Outcomes not yet mature (fewer than {config.min_matured} matured, or one outcome "
            "only): drift checks alone."
        )
    else:
        head = result.evaluation.headline
        lines.append(
            f"AUC {head['roc_auc']:.3f} ({head['roc_auc_ci_low']:.3f} to "
            f"{head['roc_auc_ci_high']:.3f}); observed rate {head['base_rate']:.3f}; ECE "
            f"{head['ece']:.3f} against a noise floor of {result.headline['ece_noise_floor']:.3f} "
            f"(noise alone reaches it in {result.headline['ece_noise_p']:.0%} of draws); "
            f"debiased calibration error {head['ece_debiased']:.3f}."
        )
    if result.linkage:
        lines.append(
            "Scores linked to outcomes: "
            + ", ".join(f"{k}: {v:,}" for k, v in result.linkage.items() if v)
            + "."
        )
    return lines


def render_html(
    result: MonitorResult, config: MonitoringConfig, pngs: dict[str, bytes] | None = None
) -> str:
    """Render the run as one self-contained HTML page (figures inline; drawn when not given)."""
    title = f"Monitoring: {result.model} version {result.version}"
    alerts = result.alerts
    ranked = result.checks.assign(order=result.checks["p_value"].fillna(2.0)).sort_values(
        ["alert", "order"], ascending=[False, True]
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.5;color:#222}table{border-collapse:collapse;"
        "margin:.5rem 0 1rem;font-size:.85rem}th,td{border:1px solid #ccc;padding:.2rem .5rem}"
        "th{background:#f2f2f2}h2{color:#0072B2}.alert{color:#D55E00}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<h2>What moved</h2><p class="alert">{len(alerts)} alert(s).</p>'
        if alerts
        else "<h2>What moved</h2><p>Nothing beyond sampling noise and the floors.</p>",
        "<ul>",
        *(f'<li class="alert">{html.escape(a)}</li>' for a in alerts),
        "</ul><h2>Key figures</h2><ul>",
        *(f"<li>{html.escape(line)}</li>" for line in summary_lines(result, config)),
        "</ul>",
    ]
    drawn = pngs if pngs is not None else figure_pngs(build_figures(result, config))
    for name, png in drawn.items():
        data = base64.b64encode(png).decode()
        parts.append(f"<h2>{html.escape(name.replace('_', ' '))}</h2>")
        parts.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">')
    parts += [
        "<h2>Every check</h2>",
        _table(ranked[["kind", "subject", "figure", "floor", "p_value", "alert", "message"]]),
        "<h2>Input drift against training</h2>",
        _table(result.drift),
    ]
    if result.evaluation is not None:
        parts += [
            "<h2>Calibration by band</h2>",
            _table(result.evaluation.band_table),
            "<h2>Calibration by score decile</h2>",
            _table(result.deciles),
            "<h2>By audited group (95 % bootstrap intervals)</h2>",
            _table(result.evaluation.group_table),
        ]
    if len(result.overrides_by_band):
        parts += [
            "<h2>Override rates by band (95 % Wilson intervals)</h2>",
            _table(result.overrides_by_band),
            "<h2>Override rates by group</h2>",
            _table(result.overrides_by_group),
        ]
    parts.append("</body></html>")
    return "\n".join(parts)
