from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.decisions import validate_decisions
from data.outcomes import validate_outcomes
from data.schema import TARGET_FIELD
from data.shifts import ShiftConfig, draw_later_cohort, simulate_deployment_records
from data.synthetic import SynthConfig, generate_cohort


def test_no_shift_is_the_generator_itself() -> None:
    cohort, _ = draw_later_cohort(500, 3, ShiftConfig())
    expected, _ = generate_cohort(SynthConfig(rows=500, seed=3))
    pd.testing.assert_frame_equal(cohort, expected)


def test_age_moves_by_the_configured_share_of_its_sd() -> None:
    base, _ = generate_cohort(SynthConfig(rows=40_000, seed=8))
    moved, _ = draw_later_cohort(10_000, 8, ShiftConfig(age_shift_sd=0.3))
    age = base["age"].to_numpy(dtype=float)
    shift = (moved["age"].to_numpy(dtype=float).mean() - age.mean()) / age.std()
    assert shift == pytest.approx(0.3, abs=0.04)
    assert moved["subject_ref"].is_unique


def test_drug_need_rises_by_the_configured_points() -> None:
    _, truth = draw_later_cohort(10_000, 4, ShiftConfig(drug_need_points=0.10))
    _, before = generate_cohort(SynthConfig(rows=40_000, seed=4))
    rise = truth["latent_drug_misuse"].mean() - before["latent_drug_misuse"].mean()
    assert rise == pytest.approx(0.10, abs=0.015)


def test_the_rate_rises_and_assessments_stay() -> None:
    plain, plain_truth = draw_later_cohort(20_000, 5, ShiftConfig())
    cohort, truth = draw_later_cohort(20_000, 5, ShiftConfig(reoffending_points=0.05))
    assert truth["p_reoffend"].mean() - plain_truth["p_reoffend"].mean() == pytest.approx(0.05)
    y0 = plain[TARGET_FIELD].to_numpy(dtype=int)
    y1 = cohort[TARGET_FIELD].to_numpy(dtype=int)
    assert (y1 >= y0).all()  # coupled: nobody who re-offended stops
    assert y1.mean() - y0.mean() == pytest.approx(0.05, abs=0.01)
    pd.testing.assert_frame_equal(
        plain.drop(columns=TARGET_FIELD), cohort.drop(columns=TARGET_FIELD)
    )


def test_deployment_records_validate_and_follow_the_outcome() -> None:
    cohort, _ = draw_later_cohort(2_000, 6, ShiftConfig())
    bands = pd.Series(
        np.random.default_rng(0).choice(["low", "medium", "high", "very high"], 2_000)
    )
    records = simulate_deployment_records(cohort, bands, override_rate=0.1, seed=1)
    outcomes = validate_outcomes(records.outcomes)
    decisions = validate_decisions(records.decisions)
    y = cohort[TARGET_FIELD].to_numpy(dtype=int)
    assert outcomes["outcome_date"].notna().to_numpy().tolist() == (y == 1).tolist()
    first = decisions[decisions["revision"] == 1]
    assert (first["decision"] == "overridden").mean() == pytest.approx(0.1, abs=0.02)
    overridden = first[first["decision"] == "overridden"]
    served = dict(zip(cohort["subject_ref"], bands, strict=True))
    assert all(
        served[s] != b
        for s, b in zip(overridden["subject_ref"], overridden["override_band"], strict=True)
    )
    assert (decisions["revision"] == 2).any()
