from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_pathway_config, load_risk_config

CONFIGS = Path(__file__).parents[2] / "configs"


def test_the_shipped_synthetic_config_loads() -> None:
    config = load_risk_config(CONFIGS / "synthetic.toml")
    assert config.dataset.synthetic is not None
    assert "ethnicity" not in config.features and "sex" in config.features
    assert config.audited_attributes == ("ethnicity", "race", "sex")
    assert [m.family for m in config.models] == ["scorecard", "boosting"]


def test_data_option_replaces_the_dataset(tmp_path: Path) -> None:
    config = load_risk_config(CONFIGS / "synthetic.toml", data=tmp_path / "cases.csv")
    assert config.dataset.path == tmp_path / "cases.csv" and config.dataset.synthetic is None


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('features = ["age", "ethnicity"]\n[dataset]\nname="x"\nsynthetic={rows=10}', "ethnicity"),
        ('features = ["age", "shoe"]\n[dataset]\nname="x"\nsynthetic={rows=10}', "shoe"),
        (
            'features = ["age", "sex"]\naudit_only=["sex"]\n'
            '[dataset]\nname="x"\nsynthetic={rows=10}',
            "audit-only",
        ),
        ('[dataset]\nname="x"', "exactly one of dataset.path and dataset.synthetic"),
        ('colour = "red"\n[dataset]\nname="x"\nsynthetic={rows=10}', "colour"),
        (
            '[dataset]\nname="x"\nsynthetic={rows=10}\n[bands]\ncutoffs=[0.5,0.3,0.7]',
            "bands.cutoffs",
        ),
        ('[dataset]\nname="x"\nsynthetic={rows=10}\n[[models]]\nfamily="forest"', "models.0"),
        ("this is not toml", "cannot read config"),
        ('calibration_folds = 1\n[dataset]\nname="x"\nsynthetic={rows=10}', "calibration_folds"),
    ],
)
def test_bad_configs_name_the_field(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_risk_config(_write(tmp_path, body))
    assert "c.toml" in str(info.value)


def test_the_shipped_pathway_config_weighs_both_learners_and_a_bad_learner_is_named(
    tmp_path: Path,
) -> None:
    assert load_pathway_config(Path("configs/pathways.toml")).model.learner == "auto"
    body = '[dataset]\nname="x"\nsynthetic={rows=10}\n[model]\nlearner="t-learner"'
    with pytest.raises(ConfigError, match=r"model\.learner") as info:
        load_pathway_config(_write(tmp_path, body))
    assert "c.toml" in str(info.value)
