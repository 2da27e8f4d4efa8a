"""HTML for self-contained report pages: escaping, tables, lists, inline figures, the page.

Every function escapes the text it is given with :func:`html.escape`, so text
from data or configuration cannot inject markup; nothing here loads anything
from outside the page. The model card (:mod:`pipeline.document`) and the
fairness report (:mod:`pipeline.fairness_report`) are built from these pieces.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any, Protocol

__all__ = ["Drawable", "escape", "html_list", "html_page", "html_table", "inline_png"]


class Drawable(Protocol):
    """Anything that saves itself as an image, as a matplotlib ``Figure`` does."""

    def savefig(self, fname: Any, **kwargs: Any) -> None:
        """Write the image to ``fname`` (a path or a binary file object)."""


def html_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Return a ``<table>`` with one header row and a body row per item of ``rows``."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_list(items: Iterable[str]) -> str:
    """Return a ``<ul>`` with an item per string."""
    return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"


def inline_png(figure: Drawable | bytes, alt: str, *, dpi: int = 90) -> str:
    """Return an ``<img>`` holding ``figure`` as a base64 PNG, so the page needs no files.

    ``figure`` may be a PNG already rendered (its bytes, embedded as they are;
    ``dpi`` is then unused), so a figure also saved as a file is drawn once.
    """
    if isinstance(figure, bytes):
        png = figure
    else:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        png = buffer.getvalue()
    data = base64.b64encode(png).decode()
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def html_page(title: str, css: str, body: Iterable[str]) -> str:
    """Return one HTML document: ``title`` as its title and first heading, then ``body``.

    Parameters
    ----------
    title
        Plain text; escaped here.
    css
        The page's whole style sheet, inlined; trusted (it comes from code).
    body
        Pieces of HTML, already escaped, one line each.
    """
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{escape(title)}</title>",
            f"<style>{css}</style>",
            "</head>",
            "<body>",
            f"<h1>{escape(title)}</h1>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )
