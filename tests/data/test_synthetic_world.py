"""The settings of a synthetic world: today's defaults, the harder world, and how they dump."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from data.synthetic_world import HARDER_WORLD, TODAYS_WORLD, SynthConfig, harder_world, todays_world


def test_todays_world_dumps_as_before_issue_17_and_the_harder_world_round_trips() -> None:
    assert SynthConfig(rows=10, seed=2).model_dump() == {
        "rows": 10,
        "seed": 2,
        "referrals": "practice",
        "effect_scale": 1.0,
    }
    harder = harder_world(rows=10, seed=2, confounding=0.5)
    assert harder.model_dump()["confounding"] == 0.5
    assert SynthConfig.model_validate_json(harder.model_dump_json()) == harder


def test_named_worlds_take_overrides_and_refuse_unknown_settings() -> None:
    today = todays_world(rows=7, seed=4)
    assert (today.rows, today.seed) == (7, 4)
    assert {name: getattr(today, name) for name in TODAYS_WORLD} == TODAYS_WORLD
    harder = harder_world(rows=7, additive_share=0.6)
    assert harder.additive_share == 0.6
    assert harder.effect_heterogeneity == HARDER_WORLD["effect_heterogeneity"]
    with pytest.raises(ValidationError, match="extra_setting"):
        harder_world(extra_setting=1.0)
