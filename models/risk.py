"""Re-offending risk models: one ``Pipeline`` per family, then calibration.

Three families: the additive scorecard (:mod:`models.scorecard`), whose
reasons are exact; gradient boosting (``HistGradientBoostingClassifier``);
and their blend, the mean of member models' log-odds
(:mod:`models.average`). All see the same encoded features, keep "not
assessed" as missing, and respect the schema's established risk directions.

Calibration maps the model's log-odds score to a probability on a separate
split. The default is isotonic: on the synthetic cohort the relation between
an additive score and the observed rate is S-shaped (people with many needs
were referred more and their referrals worked, which saturates the top), and
Platt scaling, a straight line on the log-odds, left an expected calibration
error of 0.033 where isotonic gave 0.010 at the same AUC (200,000 people; see
``docs/risk-model.md``). Both maps are monotone, so the ranking
and the direction of every reason survive; reasons are stated on the model's
log-odds score, which they sum to exactly.

On a small dataset a separate calibration split is both costly (rows the
model never learns from) and noisy (a map learned from a few hundred
people). :func:`cross_fit` instead fits on every training row and learns the
map from out-of-fold scores of the same specification: on the Broward County
data (4,616 training people) this removed the calibration error left above
the sampling-noise floor by an 866-person calibration split
(``docs/real-data.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from models.average import LogOddsAverage
from models.calibration import CalibrationMethod, ScoreCalibratedClassifier
from models.encoding import AssessmentEncoder, categorical_mask, monotonic_constraints
from models.scorecard import BinnedLogisticScorecard


class ScorecardSettings(BaseModel):
    """Settings of the additive scorecard (logistic regression on binned features)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: Literal["scorecard"] = "scorecard"
    max_bins: int = Field(default=12, ge=2, le=64)
    C: float = Field(default=1.0, gt=0)
    monotonic: bool = Field(default=True, description="respect the schema's risk directions")


class BoostingSettings(BaseModel):
    """Settings of ``HistGradientBoostingClassifier``.

    Every field but ``family`` and ``monotonic`` is one of its parameters, by
    the same name: :func:`build_boosting` passes them on as they are.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: Literal["boosting"] = "boosting"
    learning_rate: float = Field(default=0.1, gt=0, le=1)
    max_iter: int = Field(default=300, ge=1)
    max_leaf_nodes: int = Field(default=31, ge=2)
    min_samples_leaf: int = Field(default=100, ge=1)
    l2_regularization: float = Field(default=1.0, ge=0)
    early_stopping: bool = True
    monotonic: bool = Field(default=True, description="respect the schema's risk directions")
    random_state: int = 0


MemberSettings = Annotated[ScorecardSettings | BoostingSettings, Field(discriminator="family")]


class AverageSettings(BaseModel):
    """Settings of a blend: the mean log-odds of member models (:mod:`models.average`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: Literal["average"] = "average"
    members: tuple[MemberSettings, ...] = Field(
        default=(ScorecardSettings(), BoostingSettings()), min_length=2
    )
    weights: tuple[float, ...] | None = Field(
        default=None, description="one per member, non-negative; equal when omitted"
    )

    @model_validator(mode="after")
    def _one_weight_per_member(self) -> AverageSettings:
        if self.weights is not None:
            if len(self.weights) != len(self.members):
                raise ValueError(
                    f"weights needs one entry per member ({len(self.members)}), "
                    f"got {len(self.weights)}"
                )
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be non-negative and not all zero")
        return self


AnySettings = ScorecardSettings | BoostingSettings | AverageSettings

FAMILY_DESCRIPTIONS = {
    "scorecard": "additive scorecard (logistic regression on binned features); exact reasons",
    "boosting": "gradient boosting (HistGradientBoostingClassifier); tree-path reasons",
    "average": "the mean log-odds of member models, whose reasons it averages the same way",
}
ModelSettings = Annotated[AnySettings, Field(discriminator="family")]


def _encoded(features: tuple[str, ...], estimator: object) -> Pipeline:
    """Return the risk pipeline every family shares: ``encode`` the features, then ``model``."""
    return Pipeline([("encode", AssessmentEncoder(features)), ("model", estimator)])


def build_scorecard(features: tuple[str, ...], settings: ScorecardSettings) -> Pipeline:
    """Return an unfitted scorecard pipeline over ``features``."""
    scorecard = BinnedLogisticScorecard(
        max_bins=settings.max_bins,
        C=settings.C,
        categorical_features=categorical_mask(features),
        monotonic_cst=monotonic_constraints(features) if settings.monotonic else None,
    )
    return _encoded(features, scorecard)


def build_boosting(features: tuple[str, ...], settings: BoostingSettings) -> Pipeline:
    """Return an unfitted gradient-boosting pipeline over ``features``.

    Category codes are split on as ordered numbers: with few categories and
    enough depth this costs little, and it keeps every split a threshold so
    that the reasons can be computed by walking the trees.
    """
    monotonic = monotonic_constraints(features) if settings.monotonic else None
    booster = HistGradientBoostingClassifier(
        **settings.model_dump(exclude={"family", "monotonic"}),
        monotonic_cst=None if monotonic is None else monotonic.tolist(),
    )
    return _encoded(features, booster)


def build_average(features: tuple[str, ...], settings: AverageSettings) -> Pipeline:
    """Return an unfitted blend pipeline: one encoder, then the members' mean log-odds.

    Members are named by family, numbered when a family repeats.
    """
    families = [member.family for member in settings.members]
    estimators = []
    for i, member in enumerate(settings.members):
        name = member.family if families.count(member.family) == 1 else f"{member.family}_{i}"
        estimators.append((name, build_risk_model(features, member).named_steps["model"]))
    return _encoded(features, LogOddsAverage(estimators, weights=settings.weights))


def build_risk_model(features: tuple[str, ...], settings: AnySettings) -> Pipeline:
    """Return the unfitted pipeline of the family ``settings`` names."""
    if isinstance(settings, ScorecardSettings):
        return build_scorecard(features, settings)
    if isinstance(settings, AverageSettings):
        return build_average(features, settings)
    return build_boosting(features, settings)


def calibrate(
    fitted: Pipeline,
    assessments: pd.DataFrame,
    outcome: pd.Series,
    method: CalibrationMethod = "isotonic",
) -> ScoreCalibratedClassifier:
    """Fit a monotone calibration of a fitted pipeline on a held-out split.

    ``method`` is ``"isotonic"`` (default, smoothed) or ``"sigmoid"`` (Platt).

    Returns
    -------
    ScoreCalibratedClassifier
        One object holding the fitted pipeline and its calibration; its
        ``predict_proba`` gives calibrated probabilities.
    """
    calibrated = ScoreCalibratedClassifier(fitted, method=method)
    return calibrated.fit(assessments, outcome.to_numpy(dtype=int))


@dataclass(frozen=True, eq=False)
class CrossFitted:
    """A model fitted on every row, calibrated on out-of-fold scores.

    Attributes
    ----------
    model
        The pipeline fitted on all rows, with the map learned from the
        out-of-fold scores.
    out_of_fold_score
        Each row's log-odds score from the fold model that did not learn from it.
    out_of_fold_probability
        Those scores through the final map: an honest, out-of-sample
        probability for every row, for choices that must not touch the test split.
    """

    model: ScoreCalibratedClassifier
    out_of_fold_score: np.ndarray
    out_of_fold_probability: np.ndarray


def cross_fit(
    features: tuple[str, ...],
    settings: AnySettings,
    assessments: pd.DataFrame,
    outcome: pd.Series,
    *,
    method: CalibrationMethod = "isotonic",
    folds: int = 5,
    seed: int = 0,
) -> CrossFitted:
    """Fit on every row and learn the calibration from out-of-fold scores.

    ``folds`` models of the same specification are each fitted on all but
    one stratified fold and score that fold; the final pipeline is fitted on
    all rows and its map is learned from those out-of-fold scores
    (``CalibratedClassifierCV(ensemble=False)`` in spirit, but one pipeline,
    so reasons stay exact for the scorecard).

    Raises
    ------
    ValueError
        If ``folds < 2`` or a fold lacks one of the outcomes.
    """
    if folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {folds}")
    y = outcome.to_numpy(dtype=int)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out_of_fold = np.empty(len(y), dtype=np.float64)
    for learn, held in splitter.split(np.zeros((len(y), 1)), y):
        fold_model = build_risk_model(features, settings).fit(assessments.iloc[learn], y[learn])
        out_of_fold[held] = fold_model.decision_function(assessments.iloc[held])
    full = build_risk_model(features, settings).fit(assessments, y)
    model = ScoreCalibratedClassifier(full, method=method).fit_scores(out_of_fold, y)
    return CrossFitted(model, out_of_fold, model.calibrate_scores(out_of_fold))
