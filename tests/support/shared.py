"""Session fixtures built once per test run, however many pytest-xdist workers share it.

``make unit`` runs the suite on two workers (``pytest -n 2``), and each worker has its
own session: a session fixture that trains and registers a model would be trained
once per worker. :func:`built_once` builds it once, under a file lock, in the folder
every worker of the run shares (the parent of each worker's base temporary folder,
the pattern pytest-xdist documents), and gives the other workers the same folder and
the builder's result unpickled. Run without workers, it builds in the session's own
temporary folder as before.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from filelock import FileLock

T = TypeVar("T")


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the temporary folder every worker of this run shares (the session's own alone)."""
    base = tmp_path_factory.getbasetemp()
    # pytest-xdist names each worker (gw0, gw1, ...) in this variable; alone, there is none.
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]
) -> T:
    """Return ``build(folder)`` for a folder ``name``, built by whichever worker asks first.

    ``build`` fills the empty folder it is given and returns what the tests read of it
    (picklable: the other workers get a copy). A build that failed is tried afresh by the
    next worker, which then fails with its own error rather than reading a half-built folder.
    """
    root = run_folder(tmp_path_factory)
    folder = root / name
    done = root / f"{name}.pickle"
    with FileLock(root / f"{name}.lock"):
        if done.exists():
            with done.open("rb") as file:
                value: T = pickle.load(file)
            return value
        if folder.exists():
            shutil.rmtree(folder)  # a build that failed on another worker
        folder.mkdir()
        value = build(folder)
        # Written whole, then named: a worker never reads half a result.
        partial = done.with_suffix(".partial")
        with partial.open("wb") as file:
            pickle.dump(value, file)
        partial.replace(done)
        return value
