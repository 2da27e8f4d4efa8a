from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from models.bands import RiskBands
from pipeline import plots
from pipeline.evaluation import evaluate_scores


@pytest.fixture(scope="module")
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(21)
    p = rng.beta(2, 5, 1_000)
    y = (rng.random(1_000) < p).astype(int)
    return y, p


def saved(fig: Figure, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=40)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_roc_has_the_curve_and_the_diagonal(
    scores: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    y, p = scores
    fig = plots.plot_roc(y, p, label="logistic")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("logistic (AUC 0.")
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    saved(fig, tmp_path, "roc")


def test_roc_comparison_has_one_curve_per_score(
    scores: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    y, p = scores
    fig = plots.plot_roc_comparison(y, {"model": p, "static only": np.sqrt(p), "coin": 1 - p})
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 4
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.split(" (AUC")[0] for t in legend[:3]] == ["model", "static only", "coin"]
    saved(fig, tmp_path, "roc_comparison")


def test_roc_needs_scores_and_both_outcomes() -> None:
    with pytest.raises(ValueError, match="empty"):
        plots.plot_roc_comparison([0, 1], {})
    with pytest.raises(ValueError, match="both outcomes"):
        plots.plot_roc([1, 1, 1], [0.2, 0.4, 0.9], label="x")


def test_reliability_has_the_curve_the_diagonal_and_a_histogram(
    scores: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    y, p = scores
    fig = plots.plot_reliability(y, p, bins=8)
    top, bottom = fig.axes
    assert len(top.get_lines()) == 2
    curve = top.get_lines()[1]
    assert len(curve.get_xdata()) == 8
    assert len(bottom.patches) == 40  # histogram bars
    assert bottom.get_xlabel() == "Predicted probability"
    saved(fig, tmp_path, "reliability")


def test_score_distribution_draws_both_outcomes(
    scores: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    y, p = scores
    fig = plots.plot_score_distribution(y, p)
    (ax,) = fig.axes
    assert len(ax.patches) == 2  # one step outline per outcome
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        f"did not re-offend (n = {(y == 0).sum():,})",
        f"re-offended (n = {(y == 1).sum():,})",
    ]
    saved(fig, tmp_path, "distribution")


def test_band_table_plot_survives_an_empty_band(
    scores: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    y, p = scores
    table = evaluate_scores(
        y, np.minimum(p, 0.6), bands=RiskBands(), groups={}, n_bootstrap=0
    ).band_table
    assert table["n"].iloc[3] == 0
    fig = plots.plot_band_table(table)
    (ax,) = fig.axes
    assert len(ax.patches) == 8  # predicted and observed for each of four bands
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[3] == "very high\nn = 0"
    saved(fig, tmp_path, "bands")


def test_feature_effects_has_one_panel_per_feature(tmp_path: Path) -> None:
    effects = pd.DataFrame(
        {
            "feature": ["age", "age", "age", "drug_misuse", "drug_misuse", "sex", "sex"],
            "level": ["16-25", "26-40", "41+", "0", "2", "male", "female"],
            "contribution": [0.6, 0.0, -0.5, 0.0, 0.8, 0.2, -0.2],
        }
    )
    fig = plots.plot_feature_effects(effects)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["age", "drug_misuse", "sex"]
    assert [len(ax.patches) for ax in fig.axes] == [3, 2, 2]
    age = fig.axes[0]
    pairs = zip(age.get_yticks(), age.get_yticklabels(), strict=True)
    top_down = sorted(pairs, key=lambda pair: -pair[0])
    assert [label.get_text() for _, label in top_down] == ["16-25", "26-40", "41+"]
    assert len({ax.get_xlim() for ax in fig.axes}) == 1  # one scale for every feature
    saved(fig, tmp_path, "effects")


def test_feature_effects_checks_columns_and_handles_nothing() -> None:
    with pytest.raises(ValueError, match="contribution"):
        plots.plot_feature_effects(pd.DataFrame({"feature": ["a"], "level": ["1"]}))
    empty = pd.DataFrame({"feature": [], "level": [], "contribution": []})
    assert isinstance(plots.plot_feature_effects(empty), Figure)


def test_group_calibration_shows_each_group_and_its_interval(
    scores: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    y, p = scores
    sex = np.where(np.arange(len(y)) % 4 == 0, "female", "male")
    ethnicity = np.array(["asian", "black", "white", None] * (len(y) // 4), dtype=object)
    table = evaluate_scores(
        y, p, bands=RiskBands(), groups={"sex": sex, "ethnicity": ethnicity}, n_bootstrap=50
    ).group_table
    fig = plots.plot_group_calibration(table)
    left, right = fig.axes
    assert len(left.collections) == 2  # predicted and observed markers
    labels = [t.get_text() for t in left.get_yticklabels()]
    assert len(labels) == len(table) == 6
    assert labels[0] == f"sex: female (n = {(sex == 'female').sum():,})"
    assert "ethnicity: not recorded" in labels[-1]
    assert len(right.get_lines()) >= 2  # the gaps and the zero line
    saved(fig, tmp_path, "groups")


def test_plots_leave_pyplot_alone(scores: tuple[np.ndarray, np.ndarray]) -> None:
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    before = plt.get_fignums()
    y, p = scores
    plots.plot_roc(y, p, label="m")
    plots.plot_reliability(y, p)
    assert plt.get_fignums() == before
    assert matplotlib.get_backend() == backend
