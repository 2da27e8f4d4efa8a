"""The fairness audit on the mission's 50,000 people: one shared bootstrap against fairlearn's.

Figures (saved to ``benchmarks/results/fairness.json``), from one run on the
test split of ``configs/synthetic.toml`` (10,000 people; sex and ethnicity;
desist's scorecard at p >= 0.5; the config's 200 resamples):

- ``reference_seconds``: the audit's group figures as they were computed
  before, kept here as :func:`fairlearn_reference`: fairlearn's
  ``MetricFrame(n_boot=...)`` per attribute (each metric a Python function
  called on every resample, ROC AUC by scikit-learn), and a separate loop of
  resamples for the error-rate ratios;
- ``audit_seconds``: :func:`pipeline.risk_audit.audit`, the job's step: one
  set of resample counts per group, every figure and ratio read off it at
  once, plus the calibration tables; ``speed_up`` is their ratio;
- ``interval_agreement``: for every judged group and figure, how far each
  interval endpoint is from the reference's, in bootstrap standard
  deviations (half-width / 1.96): the two bootstraps draw differently
  (fairlearn resamples the whole split, desist each group within itself), so
  they agree within Monte-Carlo error, not exactly.

Run: ``.venv/bin/python -m benchmarks.bench_fairness``
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.metrics import MetricFrame
from sklearn.metrics import roc_auc_score

from benchmarks.common import save
from data.synthetic import SynthConfig, generate_cohort
from pipeline.comparison import ScoredTest
from pipeline.config import FairnessConfig, load_risk_config
from pipeline.evaluation import NOT_RECORDED
from pipeline.jobs import split_frame
from pipeline.risk_audit import audit, compare
from pipeline.risk_families import RecordedFamily, audited_groups, choose_family, fit_family

CONFIG = Path(__file__).parents[1] / "configs" / "synthetic.toml"
CI = [0.025, 0.975]
Metric = Callable[..., float]


def _flag_rate(threshold: float, outcome: int | None) -> Metric:
    """Share flagged (score >= threshold), among all or among those with ``outcome``."""

    def rate(y: npt.NDArray[np.int64], score: npt.NDArray[np.float64], **_: object) -> float:
        y, score = np.asarray(y), np.asarray(score)
        flagged = score >= threshold
        if outcome is None:
            return float(flagged.mean()) if len(y) else math.nan
        members = y == outcome
        if not members.any():
            return math.nan
        share = flagged[members].mean()
        return float(share if outcome == 0 else 1 - share)

    return rate


def _metrics_of(model: ScoredTest) -> dict[str, tuple[str, str, Metric]]:
    def auc(y: npt.NDArray[np.int64], score: npt.NDArray[np.float64], **_: object) -> float:
        y = np.asarray(y)
        return math.nan if y.min() == y.max() else float(roc_auc_score(y, score))

    def mean_predicted(y: object, score: object, *, p: npt.NDArray[np.float64]) -> float:
        return float(np.mean(p))

    def observed(y: npt.NDArray[np.int64], score: object, **_: object) -> float:
        return float(np.mean(y))

    def gap(y: npt.NDArray[np.int64], score: object, *, p: npt.NDArray[np.float64]) -> float:
        return float(np.mean(p) - np.mean(y))

    metrics: dict[str, tuple[str, str, Metric]] = {
        "roc_auc": ("-", "roc_auc", auc),
        "mean_predicted": ("-", "mean_predicted", mean_predicted),
        "observed_rate": ("-", "observed_rate", observed),
        "calibration_gap": ("-", "calibration_gap", gap),
    }
    for i, point in enumerate(model.operating_points):
        for name, outcome in (("selection_rate", None), ("fpr", 0), ("fnr", 1)):
            metrics[f"{name}@{i}"] = (point.label, name, _flag_rate(point.threshold, outcome))
    return metrics


def fairlearn_reference(
    y: npt.NDArray[np.int64],
    models: list[ScoredTest],
    groups: dict[str, pd.Series],
    config: FairnessConfig,
    seed: int,
) -> pd.DataFrame:
    """The audit's group intervals and ratios as desist computed them before (fairlearn n_boot).

    Returns ``model, operating_point, attribute, group, metric, value, ci_low,
    ci_high`` for the groups of ``config.min_group_size`` or more, and the
    ratio rows (group ``"<group>/<reference>"``).
    """
    out: list[dict[str, object]] = []
    for attribute, raw in groups.items():
        labels = raw.reset_index(drop=True).astype(object)
        labels = labels.where(labels.notna(), NOT_RECORDED).map(str)
        counts = labels.value_counts()
        large = labels.isin(counts[counts >= config.min_group_size].index).to_numpy()
        for model in models:
            metrics = _metrics_of(model)
            frame = MetricFrame(
                metrics={key: function for key, (_, _, function) in metrics.items()},
                y_true=y[large],
                y_pred=model.score[large],
                sensitive_features=labels[large].to_numpy(),
                sample_params={key: {"p": model.probability[large]} for key in metrics},
                n_boot=config.n_bootstrap,
                ci_quantiles=CI,
                random_state=seed,
            )
            low, high = frame.by_group_ci
            for group in frame.by_group.index:
                for key, (point, name, _) in metrics.items():
                    out.append(
                        {
                            "model": model.name,
                            "operating_point": point,
                            "attribute": attribute,
                            "group": str(group),
                            "metric": name,
                            "value": float(frame.by_group.loc[group, key]),
                            "ci_low": float(low.loc[group, key]),
                            "ci_high": float(high.loc[group, key]),
                        }
                    )
            if attribute == config.attribute:
                out += _reference_ratios(y, model, labels, config, seed)
    return pd.DataFrame(out)


def _reference_ratios(
    y: npt.NDArray[np.int64],
    model: ScoredTest,
    labels: pd.Series,
    config: FairnessConfig,
    seed: int,
) -> list[dict[str, object]]:
    a_rows = np.flatnonzero((labels == config.group).to_numpy())
    b_rows = np.flatnonzero((labels == config.reference).to_numpy())
    if min(a_rows.size, b_rows.size) < config.min_group_size:
        return []
    rng = np.random.default_rng([seed, 11])
    draws = [
        (rng.choice(a_rows, a_rows.size), rng.choice(b_rows, b_rows.size))
        for _ in range(config.n_bootstrap)
    ]
    out: list[dict[str, object]] = []
    for point in model.operating_points:
        for name, outcome in (("fpr", 0), ("fnr", 1), ("selection_rate", None)):
            rate = _flag_rate(point.threshold, outcome)
            value = rate(y[a_rows], model.score[a_rows]) / rate(y[b_rows], model.score[b_rows])
            samples = np.array(
                [rate(y[a], model.score[a]) / rate(y[b], model.score[b]) for a, b in draws]
            )
            low, high = np.percentile(samples[np.isfinite(samples)], [2.5, 97.5])
            out.append(
                {
                    "model": model.name,
                    "operating_point": point.label,
                    "attribute": config.attribute,
                    "group": f"{config.group}/{config.reference}",
                    "metric": f"{name} ratio",
                    "value": value,
                    "ci_low": float(low),
                    "ci_high": float(high),
                }
            )
    return out


def agreement(ours: pd.DataFrame, reference: pd.DataFrame) -> dict[str, Any]:
    """Endpoint differences between the two bootstraps, in bootstrap standard deviations."""
    keys = ["model", "operating_point", "attribute", "group", "metric"]
    merged = ours.merge(reference, on=keys, suffixes=("", "_reference"))
    figures = ["value", "ci_low", "ci_high"]
    for column in figures + [f"{c}_reference" for c in figures]:
        merged[column] = pd.to_numeric(merged[column], errors="coerce").astype(float)
    merged = merged[np.isfinite(merged["ci_low"]) & np.isfinite(merged["ci_low_reference"])]
    sd = (merged["ci_high_reference"] - merged["ci_low_reference"]) / 3.92
    low = ((merged["ci_low"] - merged["ci_low_reference"]) / sd).abs()
    high = ((merged["ci_high"] - merged["ci_high_reference"]) / sd).abs()
    both = pd.concat([low, high])
    worst = merged.assign(off=np.maximum(low, high)).sort_values("off").iloc[-1]
    return {
        "figures_compared": len(merged),
        "values_equal": bool(np.allclose(merged["value"], merged["value_reference"])),
        "median_endpoint_difference_sd": round(float(both.median()), 3),
        "p90_endpoint_difference_sd": round(float(both.quantile(0.9)), 3),
        "max_endpoint_difference_sd": round(float(both.max()), 3),
        "worst": {k: str(worst[k]) for k in keys} | {"off_sd": round(float(worst["off"]), 3)},
    }


def main() -> None:
    """Time the reference and the audit on the same inputs, compare, and save."""
    config = load_risk_config(CONFIG)
    cohort, _ = generate_cohort(config.dataset.synthetic or SynthConfig())
    splits = split_frame(cohort, config)
    print(f"test split: {len(splits.test):,} people; fitting {config.models[0].family} ...")
    fit = fit_family(config, config.models[0], splits, print)
    y_test = splits.test[config.target].to_numpy(dtype=np.int64)
    selection = choose_family([RecordedFamily(fit, fit.result("bench"), "")], y_test, seed=0)
    compared = compare(config, splits, selection)
    groups = audited_groups(splits.test, config.audited_attributes)
    fairness = config.fairness.model_copy(update={"n_bootstrap": config.evaluation.n_bootstrap})
    seed = config.evaluation.bootstrap_seed
    load_before = os.getloadavg()[0]
    print("after: the job's audit step ...", flush=True)
    started = time.perf_counter()
    audited = audit(config, splits, compared, print)
    after = time.perf_counter() - started
    print(f"after: {after:.2f} s; before: fairlearn MetricFrame(n_boot) ...", flush=True)
    started = time.perf_counter()
    reference = fairlearn_reference(y_test, list(compared.scored), groups, fairness, seed)
    before = time.perf_counter() - started
    print(f"before: {before:.1f} s", flush=True)
    assert audited is not None
    ratios = audited.audit.ratios.assign(
        group=lambda t: t["group"] + "/" + t["reference"], metric=lambda t: t["metric"] + " ratio"
    )
    ours = pd.concat([audited.audit.by_group, ratios], ignore_index=True)
    save(
        "fairness",
        {
            "config": CONFIG.name,
            "test_people": len(splits.test),
            "attributes": {name: int(values.nunique()) for name, values in groups.items()},
            "models": [s.name for s in compared.scored],
            "n_bootstrap": fairness.n_bootstrap,
            "reference_seconds": round(before, 2),
            "audit_seconds": round(after, 3),
            "speed_up": round(before / after, 1),
            "load_average_1m_at_start": round(load_before, 2),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "interval_agreement": agreement(ours, reference),
        },
    )


if __name__ == "__main__":
    main()
