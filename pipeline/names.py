"""Names made from free text: the slugs in MLflow metric keys and artifact names."""

from __future__ import annotations

import re


def slug(text: str) -> str:
    """Lower-case ``text`` with every run of other characters as one ``_``.

    Returns ``"blank"`` when nothing is left, so a name never ends in ``_``.
    """
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "blank"
