"""The fairness audit as one self-contained HTML page, figures inline.

Takes a :class:`~pipeline.fairness.FairnessAudit` (and figures already drawn
from it by :mod:`pipeline.fairness_plots`) and writes HTML with the pieces of
:mod:`pipeline.html`; it computes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from pipeline.document import number
from pipeline.fairness import METRIC_LABELS, FairnessAudit, how_to_read, too_few
from pipeline.html import Drawable, escape, html_list, html_page, html_table, inline_png

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;"
    "padding:0 1rem;line-height:1.5;color:#222}table{border-collapse:collapse;"
    "margin:.5rem 0 1rem;font-size:.9rem}th,td{border:1px solid #ccc;padding:.2rem .5rem}"
    "th{background:#f2f2f2}h2{color:#0072B2}img{max-width:100%}"
)


def wide_table(audit: FairnessAudit) -> pd.DataFrame:
    """Return :attr:`FairnessAudit.by_group` one row per figure, value with interval.

    A group below the reporting minimum reads "too few to judge (n = k)".
    """
    table = audit.by_group.copy()
    table["value (95% CI)"] = [
        too_few(int(n))
        if n < audit.min_group_size
        else _fmt(v)
        if math.isnan(lo)
        else f"{v:.3f} ({lo:.3f} to {hi:.3f})"
        for n, v, lo, hi in zip(
            table["n"], table["value"], table["ci_low"], table["ci_high"], strict=True
        )
    ]
    table["metric"] = table["metric"].map(METRIC_LABELS)
    columns = ["attribute", "group", "n", "metric", "operating_point", "model", "value (95% CI)"]
    return table[columns]


def render_report(
    audit: FairnessAudit,
    figures: Mapping[str, Drawable | bytes],
    summary: Sequence[str],
    title: str,
    *,
    attribute: str = "race",
    min_group_size: int = 50,
) -> str:
    """Render the audit as one self-contained HTML page (figures inline).

    ``figures``: each drawn or, as bytes, already rendered as PNG. Headline
    figures first; the reading is written from the data's own groups
    of ``attribute`` (the ratio's, e.g. ethnicity or race); empty tables are left out.
    """
    parts = [
        "<h2>Key figures</h2>",
        html_list(summary),
        "<h2>How to read these figures</h2>",
        f"<p>{escape(how_to_read(audit.base_rates, attribute, min_group_size))}</p>",
        "<h2>Base rates</h2>",
        _frame_table(audit.base_rates),
    ]
    if len(audit.ratios):
        parts += ["<h2>Error-rate ratios</h2>", _frame_table(audit.ratios)]
    for name, fig in figures.items():
        parts += [f"<h2>{escape(name)}</h2>", inline_png(fig, name)]
    parts += [
        "<h2>By group</h2>",
        f"<p>Groups of fewer than {audit.min_group_size:,} people are too few to judge: "
        "their size is shown, not their figures.</p>",
        _frame_table(wide_table(audit)),
        "<h2>Calibration within groups, by decile of score</h2>",
        _frame_table(audit.calibration_by_decile),
    ]
    if len(audit.calibration_by_band):
        parts += [
            "<h2>Calibration within groups, by risk band</h2>",
            _frame_table(audit.calibration_by_band),
        ]
    return html_page(title, _CSS, parts)


def _fmt(value: object) -> str:
    return number(value) if isinstance(value, float) else str(value)


def _frame_table(frame: pd.DataFrame) -> str:
    rows = ([_fmt(v) for v in row] for row in frame.itertuples(index=False))
    return html_table([str(c) for c in frame.columns], rows)
