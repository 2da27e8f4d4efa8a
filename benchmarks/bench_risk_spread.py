"""Spread of true and predicted 12-month risk in the harder world and today's (issue 17).

For each world: 40,000 people to fit the boosting risk model, 10,000 to
calibrate it, 50,000 to judge. Reports quantiles of the true probability
(``p_reoffend``, under the person's actual referrals) and of the calibrated
prediction, the share in each band (30 / 50 / 70%), the AUC of the true
probabilities and of the predictions, and the prediction for a prolific
person (22 sanctions, custody, 2 months offence-free, every needs item
significant). Writes ``benchmarks/results/risk_spread.json``.

Run: ``OMP_NUM_THREADS=1 nice .venv/bin/python -m benchmarks.bench_risk_spread``
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from benchmarks.common import save
from data.schema import DEFAULT_FEATURES, NEED_FIELDS, TARGET_FIELD
from data.synthetic import TODAYS_WORLD, SynthConfig, generate_cohort
from models.risk import BoostingSettings, build_risk_model, calibrate

QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
FEATURES = (*DEFAULT_FEATURES, "sex")


def prolific_person(like: pd.DataFrame) -> pd.DataFrame:
    """Return one prolific person, built on a row of ``like`` so that every column is typed."""
    person = like.iloc[[0]].copy()
    changes = {
        "age": 27,
        "age_first_sanction": 13,
        "total_sanctions": 22,
        "juvenile_sanctions": 6,
        "custodial_history": 1,
        "months_offence_free": 2.0,
        "offence_category": "burglary",
        "sex": "male",
        **{spec.name: 2 for spec in NEED_FIELDS},
    }
    for column, value in changes.items():
        person[column] = pd.Series([value], index=person.index).astype(person[column].dtype)
    return person


def spread(world: dict[str, float], seed: int) -> dict[str, object]:
    cohort, truth = generate_cohort(SynthConfig(rows=100_000, seed=seed, **world))
    fit, cal, judge = cohort.iloc[:40_000], cohort.iloc[40_000:50_000], cohort.iloc[50_000:]
    model = build_risk_model(FEATURES, BoostingSettings()).fit(fit, fit[TARGET_FIELD].astype(int))
    model = calibrate(model, cal, cal[TARGET_FIELD])
    predicted = model.predict_proba(judge)[:, 1]
    true = truth["p_reoffend"].to_numpy()[50_000:]
    y = judge[TARGET_FIELD].to_numpy(dtype=int)

    def bands(p: np.ndarray) -> dict[str, float]:
        edges = np.digitize(p, [0.3, 0.5, 0.7])
        names = ("under 30%", "30-50%", "50-70%", "70%+")
        return {name: round(float((edges == i).mean()), 4) for i, name in enumerate(names)}

    return {
        "reoffending_rate": round(float(y.mean()), 3),
        "auc_true_probability": round(float(roc_auc_score(y, true)), 3),
        "auc_predicted": round(float(roc_auc_score(y, predicted)), 3),
        "true_quantiles": dict(
            zip(map(str, QUANTILES), np.quantile(true, QUANTILES).round(3).tolist(), strict=True)
        ),
        "predicted_quantiles": dict(
            zip(
                map(str, QUANTILES),
                np.quantile(predicted, QUANTILES).round(3).tolist(),
                strict=True,
            )
        ),
        "true_bands": bands(true),
        "predicted_bands": bands(predicted),
        "prolific_person_predicted": round(
            float(model.predict_proba(prolific_person(judge))[0, 1]), 3
        ),
    }


def main() -> None:
    save(
        "risk_spread",
        {"harder_world_default": spread({}, 31), "todays_world": spread(TODAYS_WORLD, 31)},
    )


if __name__ == "__main__":
    main()
