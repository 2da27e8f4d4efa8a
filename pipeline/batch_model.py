"""Which model ``desist score`` scores with, and the check that it fits the config.

A risk config passed to ``desist score --config`` names the registered model
its source is scored with and the features that model must use: without
``--model`` the job scores with ``models:/<registered_model>@champion``, and a
model whose features are not the config's is refused before any row is
scored (the adapter maps the source to the config's features, not another
model's). A config with only an ``[adapter]`` table says nothing of the model.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data.errors import DesistError
from models.contract.tags import CHAMPION
from pipeline.config import load_risk_config

CHAMPION_URI = f"models:/desist-risk@{CHAMPION}"


class ModelFeatureMismatchError(DesistError):
    """The model to score with does not use the features its config names."""


@dataclass(frozen=True, slots=True)
class ExpectedModel:
    """What a risk config says of the model that scores its source."""

    registered_model: str
    features: tuple[str, ...]
    source: Path

    @property
    def champion_uri(self) -> str:
        """Return ``models:/<registered_model>@champion``."""
        return f"models:/{self.registered_model}@{CHAMPION}"


def expected_model(path: Path | None) -> ExpectedModel | None:
    """Return the registered model and features a risk config names; None for another file.

    A file names a risk model when it sets ``registered_model`` or ``features`` at
    its top level and has no ``[model]`` table (a pathway config's).

    Raises
    ------
    ConfigError
        If the file is a risk config that does not load.
    """
    if path is None:
        return None
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None  # the adapter's loader reports the file itself
    if "model" in raw or not ({"features", "registered_model"} & raw.keys()):
        return None
    config = load_risk_config(path)
    return ExpectedModel(config.registered_model, config.features, path)


def model_uri_for(uri: str | None, expected: ExpectedModel | None) -> str:
    """Return ``uri``, or else the config's champion, or else desist-risk's."""
    if uri:
        return uri
    return expected.champion_uri if expected else CHAMPION_URI


def check_features(label: str, features: Sequence[str], expected: ExpectedModel | None) -> None:
    """Refuse a model whose features are not those its config names.

    Raises
    ------
    ModelFeatureMismatchError
        Naming the features only the model uses and those only the config names.
    """
    if expected is None or set(features) == set(expected.features):
        return
    only_model = sorted(set(features) - set(expected.features))
    only_config = sorted(set(expected.features) - set(features))
    raise ModelFeatureMismatchError(
        f"{label} does not use the features of {expected.source}: "
        f"only the model uses [{', '.join(only_model)}], "
        f"only the config names [{', '.join(only_config)}]. Score with the config's own "
        f"model (omit --model: {expected.champion_uri}) or pass the config it was trained with"
    )
