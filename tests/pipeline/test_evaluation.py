from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.bands import BAND_NAMES, RiskBands
from pipeline.evaluation import GROUP_COLUMNS, HEADLINE_KEYS, NOT_RECORDED, evaluate_scores
from tests.support.scores import calibrated

BANDS = RiskBands()


def test_calibrated_scores_have_small_ece_and_unit_slope() -> None:
    y, p = calibrated(50_000, seed=1)
    ev = evaluate_scores(y, p, bands=BANDS, groups={}, n_bootstrap=20)
    assert ev.headline["ece"] < 0.02
    assert ev.headline["calibration_slope"] == pytest.approx(1.0, abs=0.05)
    assert ev.headline["calibration_intercept"] == pytest.approx(0.0, abs=0.05)
    assert ev.headline["base_rate"] == pytest.approx(y.mean())
    assert ev.headline["n"] == 50_000


def test_headline_has_exactly_the_documented_keys() -> None:
    y, p = calibrated(2_000, seed=2)
    ev = evaluate_scores(y, p, bands=BANDS, groups={}, n_bootstrap=20)
    assert tuple(ev.headline) == HEADLINE_KEYS
    assert all(isinstance(v, float) for v in ev.headline.values())


def test_auc_matches_sklearn_including_ties() -> None:
    y, p = calibrated(3_000, seed=5)
    tied = np.round(p, 1)
    for scores in (p, tied):
        ev = evaluate_scores(y, scores, bands=BANDS, groups={}, n_bootstrap=0)
        assert ev.headline["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auc_interval_contains_the_estimate_and_narrows_with_n() -> None:
    widths = []
    for n in (1_000, 20_000):
        y, p = calibrated(n, seed=6)
        head = evaluate_scores(y, p, bands=BANDS, groups={}, n_bootstrap=200).headline
        assert head["roc_auc_ci_low"] < head["roc_auc"] < head["roc_auc_ci_high"]
        widths.append(head["roc_auc_ci_high"] - head["roc_auc_ci_low"])
    assert widths[1] < widths[0] / 2  # width scales like 1 / sqrt(n): about 4.5 times narrower


def test_no_bootstrap_gives_nan_intervals() -> None:
    y, p = calibrated(500, seed=7)
    ev = evaluate_scores(y, p, bands=BANDS, groups={"g": np.zeros(500)}, n_bootstrap=0)
    assert math.isnan(ev.headline["roc_auc_ci_low"])
    assert ev.group_table["calibration_gap_ci_low"].isna().all()


def test_same_seed_same_result_and_groups_do_not_disturb_each_other() -> None:
    y, p = calibrated(4_000, seed=8)
    sex = np.where(np.arange(4_000) % 3 == 0, "female", "male")
    other = np.where(np.arange(4_000) % 2 == 0, "a", "b")
    one = evaluate_scores(y, p, bands=BANDS, groups={"sex": sex}, n_bootstrap=50, seed=3)
    two = evaluate_scores(
        y, p, bands=BANDS, groups={"other": other, "sex": sex}, n_bootstrap=50, seed=3
    )
    pd.testing.assert_frame_equal(
        one.group_table,
        two.group_table[two.group_table["attribute"] == "sex"].reset_index(drop=True),
    )
    assert one.headline == two.headline
    three = evaluate_scores(y, p, bands=BANDS, groups={"sex": sex}, n_bootstrap=50, seed=4)
    assert three.headline["roc_auc_ci_low"] != one.headline["roc_auc_ci_low"]


def test_a_group_whose_scores_are_shifted_shows_the_gap() -> None:
    rng = np.random.default_rng(9)
    n = 40_000
    true_p = rng.uniform(0.1, 0.6, n)
    y = (rng.random(n) < true_p).astype(int)
    group = np.where(rng.random(n) < 0.25, "shifted", "fair")
    p = true_p + np.where(group == "shifted", 0.1, 0.0)
    ev = evaluate_scores(y, p, bands=BANDS, groups={"g": group}, n_bootstrap=100)
    rows = ev.group_table.set_index("group")
    assert list(ev.group_table.columns) == list(GROUP_COLUMNS)
    shifted, fair = rows.loc["shifted"], rows.loc["fair"]
    assert shifted["calibration_gap"] == pytest.approx(0.1, abs=0.015)
    assert shifted["calibration_gap_ci_low"] < 0.1 < shifted["calibration_gap_ci_high"]
    assert shifted["calibration_gap"] == pytest.approx(
        shifted["mean_predicted"] - shifted["observed_rate"]
    )
    assert fair["calibration_gap"] == pytest.approx(0.0, abs=0.015)
    assert fair["calibration_gap_ci_low"] < 0 < fair["calibration_gap_ci_high"]
    assert shifted["ece"] > 0.07 > fair["ece"]
    assert ev.max_calibration_gap(min_group_size=100) == pytest.approx(shifted["calibration_gap"])
    # The shifted group is too small to count once the threshold exceeds its size.
    assert ev.max_calibration_gap(min_group_size=int(shifted["n"]) + 1) == pytest.approx(
        abs(fair["calibration_gap"])
    )
    assert math.isnan(ev.max_calibration_gap(min_group_size=n + 1))


def test_band_table_has_every_band_in_order_and_counts_sum_to_n() -> None:
    y, p = calibrated(5_000, seed=10)
    p = np.minimum(p, 0.69)  # nobody in "very high"
    table = evaluate_scores(y, p, bands=BANDS, groups={}, n_bootstrap=0).band_table
    assert list(table.columns) == ["band", "n", "share", "mean_predicted", "observed_rate"]
    assert tuple(table["band"]) == BAND_NAMES
    assert table["n"].sum() == 5_000
    assert table["share"].sum() == pytest.approx(1.0)
    empty = table.iloc[3]
    assert empty["n"] == 0 and math.isnan(empty["mean_predicted"])
    assert math.isnan(empty["observed_rate"])
    low = table.iloc[0]
    members = p < 0.30
    assert low["n"] == members.sum()
    assert low["observed_rate"] == pytest.approx(y[members].mean())


def test_missing_group_values_are_not_recorded_and_single_class_groups_get_nan_auc() -> None:
    y, p = calibrated(3_000, seed=11)
    ethnicity = pd.Series(["white", "black", None, "asian"] * 750, dtype="string")
    ethnicity.iloc[:3] = pd.NA
    only_one_outcome = np.where(np.arange(3_000) < 10, "tiny", "rest")
    y = y.copy()
    y[:10] = 0
    ev = evaluate_scores(
        y, p, bands=BANDS, groups={"ethnicity": ethnicity, "g": only_one_outcome}, n_bootstrap=50
    )
    eth = ev.group_table[ev.group_table["attribute"] == "ethnicity"]
    assert list(eth["group"]) == ["asian", "black", "white", NOT_RECORDED]
    assert eth["n"].sum() == 3_000
    assert eth.set_index("group").loc[NOT_RECORDED, "n"] == 750 + 2
    tiny = ev.group_table.set_index(["attribute", "group"]).loc[("g", "tiny")]
    assert math.isnan(tiny["roc_auc"]) and math.isnan(tiny["roc_auc_ci_low"])
    assert tiny["observed_rate"] == 0.0


def test_metric_names_are_mlflow_safe_and_nan_free() -> None:
    y, p = calibrated(3_000, seed=12)
    sex = np.array(["female", "male"] * 1_500, dtype=object)
    sex[:5] = None
    ethnicity = np.array(["black", "white", "mixed"] * 1_000)
    y = y.copy()
    y[:5] = 1  # the "not recorded" sex group has one outcome: NaN AUC, left out
    ev = evaluate_scores(
        y, p, bands=BANDS, groups={"sex": sex, "ethnicity": ethnicity}, n_bootstrap=30
    )
    metrics = ev.metrics("test_")
    assert all(re.fullmatch(r"[A-Za-z0-9_./ -]+", name) for name in metrics)
    assert not any(math.isnan(v) for v in metrics.values())
    for key in (
        "test_roc_auc",
        "test_roc_auc_ci_high",
        "test_ece",
        "test_band_high_observed_rate",
        "test_band_very_high_n",
        "test_group_sex_female_ece",
        "test_group_sex_not_recorded_n",
        "test_group_ethnicity_black_calibration_gap",
        "test_group_ethnicity_black_calibration_gap_ci_low",
    ):
        assert key in metrics
    assert "test_group_sex_not_recorded_roc_auc" not in metrics
    assert metrics["test_roc_auc"] == ev.headline["roc_auc"]
    assert set(ev.metrics()) == {name.removeprefix("test_") for name in metrics}


def test_metrics_refuse_unsafe_prefixes_and_clashing_group_names() -> None:
    y, p = calibrated(400, seed=13)
    ev = evaluate_scores(y, p, bands=BANDS, groups={}, n_bootstrap=0)
    with pytest.raises(ValueError, match="prefix"):
        ev.metrics("test:")
    clash = evaluate_scores(
        y, p, bands=BANDS, groups={"g": np.array(["Black", "black"] * 200)}, n_bootstrap=0
    )
    with pytest.raises(ValueError, match="same metric names"):
        clash.metrics()


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1, 1], [0.1, 0.2], "differ in length"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "binary"),
        ([0, np.nan, 1], [0.1, 0.2, 0.3], "binary"),
        ([0, 1, 1], [0.1, 1.2, 0.3], r"\[0, 1\]"),
        ([0, 1, 1], [0.1, np.nan, 0.3], r"\[0, 1\]"),
        ([], [], "empty"),
        ([[0, 1]], [[0.1, 0.2]], "one-dimensional"),
        (["a", "b"], [0.1, 0.2], "numeric"),
    ],
)
def test_invalid_inputs_raise_value_error(y: list[float], p: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_scores(y, p, bands=BANDS, groups={})


def test_invalid_groups_and_bootstrap_counts_raise_value_error() -> None:
    y, p = calibrated(100, seed=14)
    with pytest.raises(ValueError, match="group 'sex' has 99 values"):
        evaluate_scores(y, p, bands=BANDS, groups={"sex": np.zeros(99)})
    with pytest.raises(ValueError, match="n_bootstrap"):
        evaluate_scores(y, p, bands=BANDS, groups={}, n_bootstrap=-1)


def test_a_group_below_the_reporting_minimum_logs_its_size_only() -> None:
    y, p = calibrated(2_000, seed=12)
    group = np.where(np.arange(2_000) < 3, "few", "many")
    metrics = evaluate_scores(y, p, bands=BANDS, groups={"g": group}, n_bootstrap=20).metrics(
        "test_", min_group_size=50
    )
    assert metrics["test_group_g_few_n"] == 3
    assert not [
        name for name in metrics if name.startswith("test_group_g_few_") and not name.endswith("_n")
    ]
    assert "test_group_g_many_roc_auc" in metrics
