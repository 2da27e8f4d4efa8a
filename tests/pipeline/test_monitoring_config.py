"""The monitoring config: strict, frozen, and read from TOML with every bad field named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.config import ConfigError
from pipeline.monitoring_config import MonitoringConfig, load_monitoring_config


def test_a_file_overrides_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('false_alarm_rate = 0.05\naudited = ["sex"]\n')
    config = load_monitoring_config(path)
    assert config.false_alarm_rate == 0.05 and config.audited == ("sex",)
    assert config.psi_floor == MonitoringConfig().psi_floor


@pytest.mark.parametrize(
    "text",
    ["psi_flor = 0.1\n", "false_alarm_rate = 0.5\n", "bins = 1\n", "max_override_rate = 1\n"],
)
def test_unknown_or_out_of_range_fields_are_named(tmp_path: Path, text: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=text.split(" ")[0]):
        load_monitoring_config(path)


def test_the_config_is_frozen() -> None:
    config = MonitoringConfig()
    with pytest.raises(ValidationError):
        config.bins = 5  # type: ignore[misc]
