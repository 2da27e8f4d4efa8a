"""Content digest of a saved model, recorded at registration, checked at load.

The digest covers every file's relative path and bytes, in sorted order, so
a changed, added or removed file changes it. MLflow's own registry note
(``registered_model_meta``), which MLflow may rewrite after registration, is
left out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Packages whose types a logged model may contain: the training job refuses to log, and the
#: service to load, a model whose skops file asks to trust any other type.
TRUSTED_TYPE_PREFIXES = ("models.", "sklearn.", "numpy.", "scipy.", "builtins.")

#: Files MLflow writes into a model folder after it was logged.
UNDIGESTED = frozenset({"registered_model_meta"})


def directory_digest(root: Path) -> str:
    """Return ``sha256:<hex>`` of all model files under ``root``."""
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in UNDIGESTED)
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"
