"""Risk training on 200,000 synthetic people: speed, and AUC against the reachable ceiling.

Figures (saved to ``benchmarks/results/train_risk.json``):

- the whole job (both families, calibration, evaluation, plots, model cards,
  MLflow logging, registration) in seconds, target under 180 s, and as a
  ratio to the plainest reference fit in the same run (one scikit-learn
  ``LogisticRegression`` on the same training rows);
- test ROC AUC and ECE of each family;
- the AUC ceiling reachable from the observed features, estimated without
  outcome noise: a flexible regressor of the generator's true probability
  on the observed features of a separate 1,000,000-person cohort, scored on
  the job's test rows; and the AUC of the true (latent) probabilities.

Run: ``.venv/bin/python -m benchmarks.bench_train_risk [--rows 200000]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from benchmarks.common import save
from data.synthetic import SynthConfig, generate_cohort
from models.encoding import AssessmentEncoder
from pipeline.config import DatasetConfig, load_risk_config
from pipeline.jobs import split_frame
from pipeline.tracking import Tracker
from pipeline.train_risk import train

CONFIG = Path(__file__).parents[1] / "configs" / "synthetic.toml"
TARGET_SECONDS = 180.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--ceiling-rows", type=int, default=1_000_000)
    args = parser.parse_args()

    synth = SynthConfig(rows=args.rows, seed=2024)
    base = load_risk_config(CONFIG)
    config = base.model_copy(
        update={"dataset": DatasetConfig(name=f"synthetic-{args.rows}", synthetic=synth)}
    )
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        result = train(config, tracker=Tracker.for_home(Path(home)), progress=print)
        job_seconds = time.perf_counter() - started

    cohort, truth = generate_cohort(synth)
    splits = split_frame(cohort, config)
    test_rows = splits.test.index.to_numpy()
    y_test = cohort.loc[test_rows, config.target].to_numpy(dtype=int)
    encoder = AssessmentEncoder(config.features).fit(cohort)

    # Reference: the plainest fit of the same training rows.
    x_train = np.nan_to_num(encoder.transform(splits.train), nan=-1.0)
    y_train = splits.train[config.target].to_numpy(dtype=int)
    started = time.perf_counter()
    LogisticRegression(max_iter=1000).fit(x_train, y_train)
    reference_seconds = time.perf_counter() - started

    print(f"Fitting the ceiling regressor on {args.ceiling_rows:,} separate people ...")
    big, big_truth = generate_cohort(SynthConfig(rows=args.ceiling_rows, seed=4048))
    ceiling_model = HistGradientBoostingRegressor(
        max_iter=500, learning_rate=0.1, max_leaf_nodes=63, early_stopping=True, random_state=0
    ).fit(encoder.transform(big), big_truth["p_reoffend"].to_numpy())
    ceiling = roc_auc_score(y_test, ceiling_model.predict(encoder.transform(splits.test)))
    latent = roc_auc_score(y_test, truth.loc[test_rows, "p_reoffend"].to_numpy())

    families = {
        f.family: {
            "test_roc_auc": round(f.test["roc_auc"], 4),
            "test_roc_auc_ci": [
                round(f.test["roc_auc_ci_low"], 4),
                round(f.test["roc_auc_ci_high"], 4),
            ],
            "test_ece": round(f.test["ece"], 4),
            "selection_roc_auc": round(f.selection_roc_auc, 4),
            "fit_seconds": round(f.fit_seconds, 2),
            "gap_to_ceiling": round(ceiling - f.test["roc_auc"], 4),
        }
        for f in result.families
    }
    best = max(f.test["roc_auc"] for f in result.families)
    save(
        "train_risk",
        {
            "rows": args.rows,
            "test_rows": len(test_rows),
            "job_seconds": round(job_seconds, 1),
            "reference_logistic_regression_seconds": round(reference_seconds, 2),
            "job_to_reference_ratio": round(job_seconds / reference_seconds, 1),
            "target_seconds": TARGET_SECONDS,
            "meets_time_target": job_seconds < TARGET_SECONDS,
            "selected_family": result.selected_family,
            "selected_test_roc_auc": round(result.test["roc_auc"], 4),
            "selected_test_ece": round(result.test["ece"], 4),
            "families": families,
            "ceiling_roc_auc_from_observed_features": round(ceiling, 4),
            "latent_true_probability_roc_auc": round(latent, 4),
            "best_gap_to_ceiling": round(ceiling - best, 4),
            "selected_gap_to_ceiling": round(ceiling - result.test["roc_auc"], 4),
            "meets_auc_target": ceiling - result.test["roc_auc"] <= 0.005,
            "meets_ece_target": result.test["ece"] <= 0.02,
            "scorecard_minus_boosting_auc": round(
                families["scorecard"]["test_roc_auc"] - families["boosting"]["test_roc_auc"], 4
            )
            if {"scorecard", "boosting"} <= families.keys()
            else None,
        },
    )


if __name__ == "__main__":
    main()
