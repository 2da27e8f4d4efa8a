"""Documents for people: titled sections of paragraphs, bullet lists and tables.

One list of :class:`Section` renders to Markdown (:func:`markdown_document`)
and to a self-contained HTML page (:func:`html_document`), so both renderings
say the same thing in the same order. The number formats (``n/a`` for a
missing value, intervals, percentages, signed points) are here too, so every
table reads the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.html import escape, html_list, html_page, html_table


@dataclass(frozen=True)
class Table:
    """A table of text: a header and rows of the same length."""

    header: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass(frozen=True)
class Bullets:
    """A bullet list."""

    items: Sequence[str]


#: A block of a section; a plain ``str`` is a paragraph.
Block = str | Table | Bullets


@dataclass(frozen=True)
class Section:
    """A titled part of a document."""

    title: str
    blocks: list[Block]


def markdown_document(title: str, sections: Sequence[Section]) -> str:
    """Render ``sections`` under the heading ``title`` as Markdown.

    Text is inserted as given; bullets and table cells have line breaks
    flattened, and table cells have ``|`` escaped.
    """
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += [*_markdown_block(block), ""]
    return "\n".join(lines)


def html_document(title: str, sections: Sequence[Section], css: str) -> str:
    """Render ``sections`` as one HTML page with inline ``css``, all text escaped."""
    body: list[str] = []
    for section in sections:
        body.append(f"<h2>{escape(section.title)}</h2>")
        body += map(_html_block, section.blocks)
    return html_page(title, css, body)


def _markdown_block(block: Block) -> list[str]:
    if isinstance(block, Table):
        return _markdown_table(block)
    if isinstance(block, Bullets):
        return [f"- {_one_line(item)}" for item in block.items]
    return [block]


def _html_block(block: Block) -> str:
    if isinstance(block, Table):
        return html_table(block.header, block.rows)
    if isinstance(block, Bullets):
        return html_list(block.items)
    return f"<p>{escape(block)}</p>"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _markdown_table(table: Table) -> list[str]:
    def cells(values: Sequence[str]) -> str:
        return "| " + " | ".join(_one_line(v).replace("|", "\\|") for v in values) + " |"

    return [cells(table.header), "|" + "---|" * len(table.header), *map(cells, table.rows)]


def number(value: float, digits: int = 3) -> str:
    """Format a figure to ``digits`` decimals, ``n/a`` when missing."""
    return "n/a" if is_missing(value) else f"{value:.{digits}f}"


def percent(value: float) -> str:
    """Format a rate as a percentage to one decimal, ``n/a`` when missing."""
    return "n/a" if is_missing(value) else f"{value:.1%}"


def count(value: float) -> str:
    """Format a count with thousands separators, ``n/a`` when missing."""
    return "n/a" if is_missing(value) else f"{int(value):,}"


def with_interval(value: float, low: float, high: float) -> str:
    """Format ``value (low to high)`` to three decimals; the value alone without an interval."""
    return _interval(value, low, high, lambda v: f"{v:.3f}")


def points_with_interval(value: float, low: float, high: float) -> str:
    """Format a difference of two rates in signed percentage points, with its interval."""
    return _interval(value, low, high, lambda v: f"{100 * v:+.1f}")


def _interval(value: float, low: float, high: float, show: Callable[[float], str]) -> str:
    if is_missing(value):
        return "n/a"
    if is_missing(low) or is_missing(high):
        return show(value)
    return f"{show(value)} ({show(low)} to {show(high)})"


def is_missing(value: float | None) -> bool:
    """Return whether ``value`` is None or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))
