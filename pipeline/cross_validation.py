"""Choose features by cross-validation on the rows the job trains on, never its test split.

``desist cv risk`` takes a risk config, sets its test split aside exactly as
training will, and cross-validates each model family on the rest, adding the
config's features one at a time in the order listed (then any ``extra``
candidates, e.g. ``sex``): how much does each screening-time fact add? The
last step also calibrates inside every fold as the job does, so the expected
calibration error of the chosen setup is estimated without the test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from data.schema import check_feature_names
from models.calibration import ScoreCalibratedClassifier
from models.risk import AnySettings, build_risk_model, calibrate, cross_fit
from pipeline.calibration_metrics import (
    debiased_calibration_error,
    ece_noise_floor,
    expected_calibration_error,
)
from pipeline.config import RiskTrainConfig, check_leakage
from pipeline.datasets import load_job_data
from pipeline.jobs import Progress, silent, split_frame


@dataclass(frozen=True, slots=True)
class FeatureStudy:
    """Cross-validated figures of nested feature sets.

    Attributes
    ----------
    steps
        One row per (family, step): ``family, step, added, n_features,
        roc_auc_mean, roc_auc_sd``.
    calibrated
        One row per family, for the config's own features with its calibration
        method (cross-fitted inside each fold when the config cross-fits):
        ``family, roc_auc_mean, ece_mean, ece_sd, ece_debiased_mean,
        ece_noise_floor``.
    rows
        People cross-validated (the test split excluded).
    """

    steps: pd.DataFrame
    calibrated: pd.DataFrame
    rows: int


def _calibrated_on(
    config: RiskTrainConfig,
    settings: AnySettings,
    rows: pd.DataFrame,
    share: float,
    seed: int,
) -> ScoreCalibratedClassifier:
    """Fit and calibrate on ``rows`` as the training job would: cross-fitted, or split."""
    outcome = rows[config.target]
    if config.cross_fitted:
        return cross_fit(
            config.features,
            settings,
            rows,
            outcome,
            method=config.calibration,
            folds=config.calibration_folds,
            seed=seed,
        ).model
    train, calibration = train_test_split(
        rows, test_size=share, stratify=outcome.to_numpy(dtype=int), random_state=seed
    )
    model = build_risk_model(config.features, settings).fit(
        train, train[config.target].to_numpy(dtype=int)
    )
    return calibrate(model, calibration, calibration[config.target], config.calibration)


def study_features(
    config: RiskTrainConfig,
    *,
    extra: Sequence[str] = (),
    folds: int = 5,
    seed: int = 0,
    progress: Progress = silent,
) -> FeatureStudy:
    """Cross-validate nested feature sets of ``config`` on its non-test rows.

    ``extra`` may name an audit-only attribute that the schema allows as a
    feature (sex), to measure what it would add; never race, an outcome or
    anything made from a never-feature column.

    Raises
    ------
    LeakageError, ForbiddenFeatureError, UnknownFieldError
        If an ``extra`` candidate may not be a feature.
    """
    candidates = tuple(dict.fromkeys((*config.features, *extra)))
    # An extra candidate may be an audit-only attribute the schema allows as a
    # feature (sex), to measure what using it would add; never a leaking one.
    audit_only = tuple(name for name in config.audit_only if name not in extra)
    check_leakage(candidates, audit_only, config.adapter)
    check_feature_names(candidates)
    data = load_job_data(config.dataset, [config.target], config.adapter)
    splits = split_frame(data.frame, config)
    rest = pd.concat([splits.train, splits.calibration]).reset_index(drop=True)
    y = rest[config.target].to_numpy(dtype=int)
    folder = StratifiedKFold(folds, shuffle=True, random_state=seed)
    fold_rows = list(folder.split(rest, y))
    steps = []
    for settings in config.models:
        for size in range(1, len(candidates) + 1):
            features = candidates[:size]
            aucs = []
            for fit_rows, held_rows in fold_rows:
                model = build_risk_model(features, settings).fit(rest.iloc[fit_rows], y[fit_rows])
                aucs.append(
                    roc_auc_score(y[held_rows], model.decision_function(rest.iloc[held_rows]))
                )
            steps.append(
                {
                    "family": settings.family,
                    "step": size,
                    "added": features[-1],
                    "n_features": size,
                    "roc_auc_mean": float(np.mean(aucs)),
                    "roc_auc_sd": float(np.std(aucs)),
                }
            )
            progress(f"  {settings.family:<10} + {features[-1]:<32} AUC {np.mean(aucs):.4f}")
    share = config.split.calibration_fraction / (1 - config.split.test_fraction)
    calibrated = []
    for settings in config.models:
        aucs, eces, debiased, floors = [], [], [], []
        for fit_rows, held_rows in fold_rows:
            calibrated_model = _calibrated_on(config, settings, rest.iloc[fit_rows], share, seed)
            p = calibrated_model.predict_proba(rest.iloc[held_rows])[:, 1]
            aucs.append(roc_auc_score(y[held_rows], p))
            eces.append(expected_calibration_error(y[held_rows], p))
            debiased.append(debiased_calibration_error(y[held_rows], p))
            floors.append(ece_noise_floor(p, n_draws=50, seed=seed))
        calibrated.append(
            {
                "family": settings.family,
                "roc_auc_mean": float(np.mean(aucs)),
                "ece_mean": float(np.mean(eces)),
                "ece_sd": float(np.std(eces)),
                "ece_debiased_mean": float(np.mean(debiased)),
                "ece_noise_floor": float(np.mean(floors)),
            }
        )
    return FeatureStudy(pd.DataFrame(steps), pd.DataFrame(calibrated), len(rest))
