"""The checks' tests hold their false alarm rates on calibrated scores, and find a change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.drift import DecileCalibration
from pipeline.monitoring_checks import (
    calibration_checks,
    decide,
    decile_change_check,
    override_checks,
)
from pipeline.monitoring_config import MonitoringConfig

CONFIG = MonitoringConfig()


def _calibrated(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[np.ndarray, ...]:
    p = rng.beta(2, 3, n)
    y = (rng.random(n) < np.clip(p + shift, 0, 1)).astype(np.int64)
    return y, p


@pytest.mark.slow
def test_calibration_tests_keep_their_false_alarm_rate() -> None:
    rng = np.random.default_rng(0)
    y_ref, p_ref = _calibrated(rng, 6_000)
    reference = DecileCalibration.of(p_ref, y_ref)
    overall, deciles = [], []
    for _ in range(1_000):
        y, p = _calibrated(rng, 2_000)
        checks, _ = calibration_checks(y, p, {}, CONFIG, reference)
        by_kind = {c.kind: c.p_value for c in checks}
        overall.append(by_kind["calibration"])
        deciles.append(by_kind["calibration_deciles"])
    assert np.mean(np.array(overall) < 0.01) == pytest.approx(0.01, abs=0.008)
    assert np.mean(np.array(deciles) < 0.01) == pytest.approx(0.01, abs=0.008)


def test_a_change_of_calibration_is_found_and_named() -> None:
    rng = np.random.default_rng(1)
    y_ref, p_ref = _calibrated(rng, 6_000)
    y, p = _calibrated(rng, 5_000, shift=0.06)
    check = decile_change_check(y, p, DecileCalibration.of(p_ref, y_ref), CONFIG)
    assert check.p_value < 1e-8
    assert check.figure > CONFIG.decile_calibration_floor
    assert "against the test split's" in check.detail
    checks, table = calibration_checks(y, p, {"sex": pd.Series(["male"] * 5_000)}, CONFIG)
    decided, _ = decide(checks, CONFIG.false_alarm_rate)
    alerted = {(c.kind, c.subject) for c in decided if c.alert}
    assert {("calibration", "all"), ("calibration_group", "sex=male")} <= alerted
    assert len(table) == 10
    assert table["observed"].sum() == y.sum()


def test_override_rates_by_band_and_group() -> None:
    rng = np.random.default_rng(2)
    n = 4_000
    band = rng.choice(["low", "medium", "high"], n)
    group = pd.Series(rng.choice(["a", "b"], n))
    rate = np.where(band == "high", 0.35, 0.05)
    decided = pd.DataFrame({"risk_band": band, "overridden": rng.random(n) < rate})
    checks, by_band, by_group = override_checks(decided, {"g": group}, CONFIG)
    decided_checks, _ = decide(checks, CONFIG.false_alarm_rate)
    alerts = {(c.kind, c.subject) for c in decided_checks if c.alert}
    assert alerts == {("override_rate", "high")}
    assert by_band["band"].tolist() == ["low", "medium", "high"]
    assert (by_band["ci_low"] <= by_band["rate"]).all()
    assert set(by_group["group"]) == {"a", "b"}
