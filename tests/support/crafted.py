"""Crafted model files for the contract's tests: skops nodes that call code, a planted pickle."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import skops
import yaml


def call_node(module: str, function: str, argument: str) -> dict[str, object]:
    """A skops node that calls ``module.function(argument)`` when built."""
    text = {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode"}
    return {
        "__class__": function,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [{**text, "content": json.dumps(argument), "is_json": True}],
        },
        "protocol": 2,
        "_skops_version": skops.__version__,
    }


def write_skops(path: Path, schema: dict[str, object]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))


class Planted:
    """Unpickling this creates a file: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def write_mlmodel(files: Path, *, trusted: list[str] | None = None, **flavor: object) -> Path:
    """Write an ``MLmodel`` in ``files`` declaring a skops sklearn flavour; return ``files``.

    ``trusted`` is the flavour's ``skops_trusted_types``; ``flavor`` adds or
    overrides its other keys (e.g. ``serialization_format="pickle"``).
    """
    sklearn = {
        "serialization_format": "skops",
        "pickled_model": "model.skops",
        "skops_trusted_types": trusted or [],
        **flavor,
    }
    (files / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": sklearn}}))
    return files
