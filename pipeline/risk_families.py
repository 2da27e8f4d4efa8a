"""Model families of the risk job: fit, calibrate, evaluate one family; choose among them.

Nothing here talks to MLflow: each step returns a typed result that
:mod:`pipeline.risk_record` records. A family is chosen on the *choice rows*
(the calibration split, or the training rows scored out-of-fold when
cross-fitted), never on the test split, which stays an honest estimate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models.calibration import ScoreCalibratedClassifier
from models.explain import explain, feature_effects
from models.risk import AnySettings, build_risk_model, calibrate, cross_fit
from pipeline.calibration_metrics import (
    debiased_calibration_error,
    ece_noise_floor,
    ece_noise_test,
    expected_calibration_error,
)
from pipeline.config import RiskTrainConfig
from pipeline.evaluation import Evaluation, evaluate_scores
from pipeline.jobs import Progress, Splits

#: Rows explained to draw the feature-effects plot (enough for stable means).
EFFECT_SAMPLE = 5_000


@dataclass(frozen=True, slots=True)
class FamilyResult:
    """One model family's outcome within a job."""

    family: str
    run_id: str
    #: AUC on the rows families are chosen on: the calibration split, or
    #: out-of-fold over the training rows when cross-fitted. Never the test split.
    selection_roc_auc: float
    test: dict[str, float]
    fit_seconds: float


@dataclass(frozen=True, eq=False)
class FamilyFit:
    """One family fitted, calibrated and evaluated (not yet recorded)."""

    family: str
    model: ScoreCalibratedClassifier
    evaluation: Evaluation
    #: Out-of-sample probabilities on :func:`choice_rows`, in their order.
    choice_probability: np.ndarray
    selection_roc_auc: float
    #: Metrics about the choice rows (``calibration_split_roc_auc`` or ``out_of_fold_*``).
    choice_metrics: dict[str, float]
    fit_seconds: float
    #: Probabilities on the test split, in its order.
    test_probability: np.ndarray
    #: Mean feature effects on the first :data:`EFFECT_SAMPLE` test rows.
    effects: pd.DataFrame
    #: Largest calibration gap among groups of at least the gates' minimum size.
    max_group_calibration_gap: float

    def result(self, run_id: str) -> FamilyResult:
        """Return the family's outcome, once recorded in run ``run_id``."""
        return FamilyResult(
            family=self.family,
            run_id=run_id,
            selection_roc_auc=self.selection_roc_auc,
            test=self.evaluation.headline,
            fit_seconds=self.fit_seconds,
        )


def audited_groups(frame: pd.DataFrame, attributes: tuple[str, ...]) -> dict[str, pd.Series]:
    """Audited attributes the data records (an attribute nobody recorded has nothing to audit)."""
    return {name: frame[name].astype(object) for name in attributes if frame[name].notna().any()}


def evaluate_on(
    config: RiskTrainConfig, frame: pd.DataFrame, probability: np.ndarray
) -> Evaluation:
    """Evaluate ``probability`` against the outcomes of ``frame``, by band and audited group."""
    return evaluate_scores(
        frame[config.target].to_numpy(dtype=int),
        probability,
        bands=config.bands,
        groups=audited_groups(frame, config.audited_attributes),
        n_bootstrap=config.evaluation.n_bootstrap,
        seed=config.evaluation.bootstrap_seed,
    )


def choice_rows(splits: Splits, *, cross_fitted: bool) -> pd.DataFrame:
    """Rows on which the job makes its choices (family, comparable cut-off), never the test split.

    The calibration split; or, when cross-fitted, the training rows, each
    scored out-of-fold.
    """
    return splits.train if cross_fitted else splits.calibration


def fit_and_calibrate(
    config: RiskTrainConfig, settings: AnySettings, splits: Splits
) -> tuple[ScoreCalibratedClassifier, np.ndarray]:
    """Return the calibrated model and its out-of-sample probabilities on the choice rows."""
    y_train = splits.train[config.target]
    if config.cross_fitted:
        crossed = cross_fit(
            config.features,
            settings,
            splits.train,
            y_train,
            method=config.calibration,
            folds=config.calibration_folds,
            seed=config.split.seed,
        )
        return crossed.model, crossed.out_of_fold_probability
    fitted = build_risk_model(config.features, settings).fit(
        splits.train, y_train.to_numpy(dtype=int)
    )
    model = calibrate(
        fitted, splits.calibration, splits.calibration[config.target], config.calibration
    )
    return model, model.predict_proba(splits.calibration)[:, 1]


def choice_metrics(
    y: np.ndarray, probability: np.ndarray, *, cross_fitted: bool, seed: int
) -> tuple[float, dict[str, float]]:
    """Return the selection AUC on the choice rows, and the metrics to log about them.

    Out-of-fold scores cover every training row, so their ECE is logged too: a
    calibration check on about four times the test split's rows, with a much
    lower sampling-noise floor.
    """
    auc = float(roc_auc_score(y, probability))
    if not cross_fitted:
        return auc, {"calibration_split_roc_auc": auc}
    return auc, {
        "out_of_fold_roc_auc": auc,
        "out_of_fold_ece": expected_calibration_error(y, probability),
        "out_of_fold_ece_debiased": debiased_calibration_error(y, probability),
        "out_of_fold_ece_noise_floor": ece_noise_floor(probability, seed=seed),
    }


def fit_family(
    config: RiskTrainConfig, settings: AnySettings, splits: Splits, progress: Progress
) -> FamilyFit:
    """Fit, calibrate and evaluate one family on the job's splits."""
    how = (
        f" ({config.calibration_folds}-fold cross-fitted calibration)"
        if config.cross_fitted
        else ""
    )
    progress(f"  {settings.family}: fitting on {len(splits.train):,} rows{how} ...")
    started = time.perf_counter()
    model, choice_probability = fit_and_calibrate(config, settings, splits)
    fit_seconds = time.perf_counter() - started
    y_choice = choice_rows(splits, cross_fitted=config.cross_fitted)[config.target]
    selection_auc, choice = choice_metrics(
        y_choice.to_numpy(dtype=int),
        choice_probability,
        cross_fitted=config.cross_fitted,
        seed=config.evaluation.bootstrap_seed,
    )
    progress(f"  {settings.family}: fitted in {fit_seconds:.1f} s; evaluating on test ...")
    probability = model.predict_proba(splits.test)[:, 1]
    evaluation = evaluate_on(config, splits.test, probability)
    sample = splits.test.head(EFFECT_SAMPLE)
    return FamilyFit(
        family=settings.family,
        model=model,
        evaluation=evaluation,
        choice_probability=choice_probability,
        selection_roc_auc=selection_auc,
        choice_metrics=choice,
        fit_seconds=fit_seconds,
        test_probability=probability,
        effects=feature_effects(explain(model, sample), sample),
        max_group_calibration_gap=evaluation.max_calibration_gap(config.gates.min_group_size),
    )


@dataclass(frozen=True, eq=False)
class RecordedFamily:
    """A family's fit with what recording it produced: its run's result and model URI."""

    fit: FamilyFit
    result: FamilyResult
    model_uri: str


@dataclass(frozen=True, eq=False)
class Selection:
    """The family chosen on the choice rows, every family, and the chosen one's ECE noise."""

    chosen: RecordedFamily
    families: tuple[RecordedFamily, ...]
    ece_noise_floor: float
    #: Share of perfectly calibrated draws whose test ECE reaches the observed one.
    ece_noise_p: float

    @property
    def results(self) -> tuple[FamilyResult, ...]:
        """Every family's result, in config order."""
        return tuple(f.result for f in self.families)


def choose_family(
    families: Sequence[RecordedFamily], y_test: np.ndarray, *, seed: int
) -> Selection:
    """Choose the family with the best selection AUC (the first among equals)."""
    chosen = max(families, key=lambda f: f.result.selection_roc_auc)
    noise_floor, noise_p = ece_noise_test(y_test, chosen.fit.test_probability, seed=seed)
    return Selection(chosen, tuple(families), noise_floor, noise_p)


def family_table(selection: Selection) -> pd.DataFrame:
    """Each family's selection AUC, test figures and fit time (``tables/family_comparison``)."""
    return pd.DataFrame(
        [
            {
                "model": f.family,
                "selection_roc_auc": f.selection_roc_auc,
                **{k: f.test[k] for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high")},
                "ece": f.test["ece"],
                "brier": f.test["brier"],
                "fit_seconds": f.fit_seconds,
            }
            for f in selection.results
        ]
    )
