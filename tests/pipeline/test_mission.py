"""The whole mission on small cohorts: both models promoted, served over HTTP, audited, reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from benchmarks.support.configs import (
    LOOSE_GATES,
    LOOSE_PATHWAY_GATES,
    small_config,
    tiny_pathway_config,
)
from models.risk import ScorecardSettings
from pipeline.calibration_checks import CalibrationGateConfig
from pipeline.config import PathwayGateConfig
from pipeline.mission import MISSION_CLIENT, MissionError, render_screen, run_mission
from pipeline.tracking import Tracker
from serving.database import api_keys_table, make_engine
from serving.settings import Settings

# Small cohorts: only a grossly miscalibrated model would be refused.
LOOSE_CALIBRATION = CalibrationGateConfig(max_debiased_error=1.0, slope_bounds=(0.01, 100.0))


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'service.db'}")


def test_mission_trains_promotes_serves_audits_and_reports(tmp_path: Path) -> None:
    tracker = Tracker.for_home(tmp_path / "home")
    settings = _settings(tmp_path)
    lines: list[str] = []
    result = run_mission(
        small_config(
            models=(ScorecardSettings(),), gates=LOOSE_GATES, calibration_gate=LOOSE_CALIBRATION
        ),
        tiny_pathway_config(LOOSE_PATHWAY_GATES),
        tracker=tracker,
        settings=settings,
        progress=lines.append,
    )
    assert result.risk_promotion.promoted and result.pathway_promotion.promoted
    assert result.score.model_version == result.risk.version == "1"
    assert result.recommendation.model_version == result.pathways.version == "1"
    assert result.score.audited_rows == result.recommendation.audited_rows == 1
    assert "risk" in result.score.summary
    assert any(line.startswith("Thread budget: 1") for line in lines)  # DESIST_THREADS=1
    screen = render_screen(result, tracker, tmp_path / "home", Path("configs/synthetic.toml"))
    for words in ("champion", "/v1/risk-scores", "/v1/pathway-recommendations", "mlflow ui"):
        assert words in screen
    # The run's key is revoked afterwards: no live key is left behind.
    engine = make_engine(settings.resolved_database_url())
    with engine.connect() as conn:
        keys = conn.execute(
            select(api_keys_table.c.revoked_at).where(api_keys_table.c.client == MISSION_CLIENT)
        ).all()
    engine.dispose()
    assert len(keys) == 1 and keys[0].revoked_at is not None


def test_mission_stops_when_a_gate_refuses_a_model(tmp_path: Path) -> None:
    # No pathway model beats the needs-score rule by a whole probability point.
    refusing = PathwayGateConfig(min_gain_over_rnr=1.0)
    with pytest.raises(MissionError, match="not promoted"):
        run_mission(
            small_config(
                models=(ScorecardSettings(),),
                gates=LOOSE_GATES,
                calibration_gate=LOOSE_CALIBRATION,
            ),
            tiny_pathway_config(refusing),
            tracker=Tracker.for_home(tmp_path / "home"),
            settings=_settings(tmp_path),
        )
