"""A simulated deployment end to end: train, register-time reference, later cohort, records.

Used by the monitoring test and ``benchmarks/bench_monitoring.py`` so both
exercise the same path: a risk model is trained on one synthetic cohort
(the :mod:`models.risk` building blocks, as the model tests do) and its
training reference made as registration would; a later cohort, shifted or
not (:mod:`data.shifts`), is scored; deployment records (when each score was
served, outcomes drawn from the truth, practitioners' decisions with some
overrides) are simulated, validated as imports are, and handed to the
monitor as its inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pandas as pd

from data.decisions import validate_decisions
from data.outcomes import validate_outcomes
from data.schema import DEFAULT_FEATURES, TARGET_FIELD
from data.shifts import ShiftConfig, draw_later_cohort, simulate_deployment_records
from data.synthetic import SynthConfig, generate_cohort
from models.bands import RiskBands
from models.calibration import ScoreCalibratedClassifier
from models.risk import ScorecardSettings, build_risk_model, calibrate
from pipeline.drift import SCORE, TrainingReference, make_training_reference
from pipeline.monitoring import MonitorResult, assess, monitor
from pipeline.monitoring_config import MonitoringConfig
from pipeline.tracking import Tracker

#: The features of the simulated model: the synthetic config's.
FEATURES: tuple[str, ...] = (*DEFAULT_FEATURES, "sex")


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A calibrated model and the reference registration would store with it."""

    model: ScoreCalibratedClassifier
    reference: TrainingReference


def train_simulated_model(rows: int = 30_000, seed: int = 101) -> TrainedModel:
    """Train a scorecard on 60 % of a cohort, calibrate on 20 %, reference the rest.

    The reference bins the training rows' features and the test rows' scores
    (with their AUC), as :func:`pipeline.drift.make_training_reference` would
    be called at registration.
    """
    cohort, _ = generate_cohort(SynthConfig(rows=rows, seed=seed))
    cut1, cut2 = int(rows * 0.6), int(rows * 0.8)
    train, calibration, test = cohort.iloc[:cut1], cohort.iloc[cut1:cut2], cohort.iloc[cut2:]
    fitted = build_risk_model(FEATURES, ScorecardSettings()).fit(
        train, train[TARGET_FIELD].astype(int)
    )
    model = calibrate(fitted, calibration, calibration[TARGET_FIELD])
    reference = make_training_reference(
        train,
        FEATURES,
        probability=model.predict_proba(test)[:, 1],
        outcome=test[TARGET_FIELD].to_numpy(dtype=int),
    )
    return TrainedModel(model, reference)


@dataclass(frozen=True, eq=False)
class MonitoringInputs:
    """What the monitor is given: scores with their assessments, outcomes and decisions."""

    scores: pd.DataFrame
    outcomes: pd.DataFrame
    decisions: pd.DataFrame
    truth: pd.DataFrame


def simulate_monitoring_inputs(
    trained: TrainedModel,
    shift: ShiftConfig,
    *,
    rows: int,
    seed: int,
    bands: RiskBands | None = None,
    override_rate: float = 0.08,
) -> MonitoringInputs:
    """Score a later cohort and simulate its deployment records.

    ``scores`` holds what the audit log records (request id, subject, time,
    version, probability, band) beside the assessment as sent (features and
    audited attributes, never the outcome).
    """
    bands = bands or RiskBands()
    later, truth = draw_later_cohort(rows, seed, shift)
    probability = trained.model.predict_proba(later)[:, 1]
    band = pd.Series(bands.band_names(probability))
    records = simulate_deployment_records(later, band, seed=seed, override_rate=override_rate)
    assessment = later.drop(
        columns=[TARGET_FIELD, *records.served.columns.intersection(later.columns)]
    )
    scores = pd.concat([records.served, assessment], axis=1).assign(
        model_version="1", **{SCORE: probability, "risk_band": band.to_numpy()}
    )
    return MonitoringInputs(
        scores=scores,
        outcomes=validate_outcomes(records.outcomes),
        decisions=validate_decisions(records.decisions),
        truth=truth,
    )


#: The registered version the simulated scores name.
SIMULATED_VERSION = "1"


def monitor_simulated(
    config: MonitoringConfig,
    trained: TrainedModel,
    inputs: MonitoringInputs,
    *,
    tracker: Tracker | None = None,
) -> MonitorResult:
    """Run the monitor on simulated inputs against the trained model's reference.

    Without a ``tracker`` only the checks run (:func:`pipeline.monitoring.assess`);
    with one, the run is logged too (:func:`pipeline.monitoring.monitor`).
    """
    run: Callable[..., MonitorResult] = (
        assess if tracker is None else partial(monitor, tracker=tracker)
    )
    return run(
        config,
        scores=inputs.scores,
        outcomes=inputs.outcomes,
        decisions=inputs.decisions,
        reference=trained.reference,
        version=SIMULATED_VERSION,
    )
