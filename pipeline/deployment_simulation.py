"""A simulated deployment end to end: train, register-time reference, later cohort, records.

Used by the monitoring tests and ``benchmarks/bench_monitoring.py`` so both
exercise the same paths.

In process (:func:`simulate_monitoring_inputs`): a risk model is trained on
one synthetic cohort (the :mod:`models.risk` building blocks, as the model
tests do) and its training reference made as registration would; a later
cohort, shifted or not (:mod:`data.shifts`), is scored; deployment records
(when each score was served, outcomes drawn from the truth, practitioners'
decisions with some overrides) are simulated, validated as imports are, and
handed to the monitor as its inputs.

Through the service (:func:`deploy_through_service`): a later cohort is sent
to a running service's ``POST /v1/risk-scores`` (the registered champion
scores it and the audit log records it), decisions on a share of those
scores go to ``POST /v1/decisions``, and the truth file (outcomes) and the
assessments as sent are written for ``desist outcomes import`` and
``desist monitor --assessments``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from data.decisions import validate_decisions
from data.outcomes import validate_outcomes
from data.schema import ASSESSMENT_FIELDS, DEFAULT_FEATURES, ID_FIELD, TARGET_FIELD
from data.shifts import (
    ShiftConfig,
    draw_later_cohort,
    simulate_decisions,
    simulate_deployment_records,
    simulate_outcomes,
)
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


class Poster(Protocol):
    """What sends requests to the service: FastAPI's ``TestClient`` or an ``httpx.Client``."""

    def post(self, url: str, *, json: Any, headers: dict[str, str]) -> Any:
        """Send a JSON body; return the response (``status_code``, ``json()``)."""
        ...


@dataclass(frozen=True, eq=False)
class ServedCohort:
    """A later cohort scored through the service, and the files its deployment holds.

    Attributes
    ----------
    served
        One row per score as answered: ``request_id``, ``subject_ref``,
        ``risk_probability``, ``risk_band``.
    assessments
        The assessments as sent (Parquet, schema columns, never the outcome).
    outcomes
        The truth file: one outcome row per person (CSV), for the outcomes import.
    decisions
        Decisions recorded through ``POST /v1/decisions`` (revisions included).
    """

    served: pd.DataFrame
    assessments: Path
    outcomes: Path
    decisions: int


class ServiceAnswerError(RuntimeError):
    """The service refused a request the simulation expected it to accept."""


def _answer(client: Poster, url: str, body: dict[str, Any], key: str, expect: int) -> Any:
    answer = client.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
    if answer.status_code != expect:
        raise ServiceAnswerError(f"{url} answered {answer.status_code}: {answer.text[:300]}")
    return answer.json()


def score_through_service(
    client: Poster, key: str, cohort: pd.DataFrame, *, batch: int = 500
) -> pd.DataFrame:
    """Send ``cohort``'s assessments to ``POST /v1/risk-scores`` in batches; return the scores."""
    sent = [name for name in (spec.name for spec in ASSESSMENT_FIELDS) if name in cohort.columns]
    # pandas writes "not assessed" as null and numbers as JSON numbers; nulls are left out.
    records = json.loads(cohort[sent].to_json(orient="records"))
    assessments = [{k: v for k, v in r.items() if v is not None} for r in records]
    rows = []
    for start in range(0, len(assessments), batch):
        chunk = {"assessments": assessments[start : start + batch]}
        body = _answer(client, "/v1/risk-scores", chunk, key, 200)
        rows += [
            (body["request_id"], s[ID_FIELD], s["risk_probability"], s["risk_band"])
            for s in body["scores"]
        ]
    return pd.DataFrame(rows, columns=["request_id", ID_FIELD, SCORE, "risk_band"])


def record_decisions(client: Poster, key: str, decisions: pd.DataFrame) -> int:
    """Send each decision (in revision order) to ``POST /v1/decisions``; return how many."""
    fields = ("request_id", ID_FIELD, "decision", "override_band", "reason", "practitioner_ref")
    ordered = decisions.sort_values("revision", kind="stable")
    for row in ordered[list(fields)].astype(object).itertuples(index=False):
        body = {k: v for k, v in zip(fields, row, strict=True) if v is not None and not pd.isna(v)}
        _answer(client, "/v1/decisions", body, key, 201)
    return len(ordered)


#: Share of the scores served through the service that get a decision, and of those overridden.
DECIDED_SHARE = 0.25
OVERRIDE_RATE = 0.08


def deploy_through_service(
    client: Poster, key: str, shift: ShiftConfig, *, rows: int, seed: int, folder: Path
) -> ServedCohort:
    """Score a later cohort through the service, record decisions, write the truth file.

    The service stamps each score with the time it served it, so outcomes
    are drawn from that day on (dates a year and more ahead: the simulation
    runs the clock forward, and the monitor looks from the latest follow-up
    end). Decisions are recorded on a random :data:`DECIDED_SHARE` of the
    scores, :data:`OVERRIDE_RATE` of them overridden.
    """
    later, _ = draw_later_cohort(rows, seed, shift)
    day = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    served = score_through_service(client, key, later)
    if served[ID_FIELD].tolist() != later[ID_FIELD].astype(str).tolist():
        raise ServiceAnswerError("the service answered scores out of order")
    rng = np.random.default_rng([seed, 16])
    outcomes = simulate_outcomes(later, pd.DatetimeIndex([day] * rows), rng)
    decided = served[rng.random(rows) < DECIDED_SHARE].reset_index(drop=True)
    decisions = simulate_decisions(
        decided.assign(time=day), decided["risk_band"], rng, override_rate=OVERRIDE_RATE
    )
    folder.mkdir(parents=True, exist_ok=True)
    files = ServedCohort(
        served=served,
        assessments=folder / f"assessments-{seed}.parquet",
        outcomes=folder / f"outcomes-{seed}.csv",
        decisions=record_decisions(client, key, decisions),
    )
    later.drop(columns=[TARGET_FIELD]).to_parquet(files.assessments)
    outcomes.to_csv(files.outcomes, index=False)
    return files
