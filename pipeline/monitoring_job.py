"""The job behind ``desist monitor``: what the service recorded for a version, checked and logged.

:func:`run_monitoring` reads the version's training reference from the
registry (:func:`pipeline.monitoring_reference.load_training_reference`), the scores
the version served in a period with the decisions and outcomes that followed
from the service's database (:func:`serving.monitoring_inputs.load_monitoring_inputs`,
the same ``DESIST_*`` settings as the service and ``desist outcomes import``),
runs :func:`pipeline.monitoring.monitor` (one MLflow run linked to the
version); :func:`write_report` copies the run's HTML report to a file.

The audit log keeps a digest of each assessment, not the assessment: input
drift and the group checks need the assessments as sent, passed as a file
(``assessments``); without it, the score's shift, the outcomes and the
overrides are checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from data.loaders import load_dataset
from data.schema import TARGET_FIELD
from pipeline.monitoring import REPORT_ARTIFACT, MonitorResult, monitor
from pipeline.monitoring_config import MonitoringConfig
from pipeline.monitoring_reference import load_training_reference
from pipeline.tracking import Tracker
from serving.database import make_engine
from serving.metrics import write_drift_snapshot
from serving.monitoring_inputs import load_monitoring_inputs
from serving.settings import Settings, get_settings


@dataclass(frozen=True, slots=True)
class MonitoringScope:
    """What a monitoring run looks at.

    Attributes
    ----------
    version
        The registered version monitored.
    since, until
        Bounds of the scores' times (``until`` excluded; open when None;
        naive times are UTC).
    as_of
        The day monitoring looks from (default: the latest follow-up end imported).
    assessments
        Optional file of the assessments as sent, one row per ``subject_ref``,
        for input drift and the group checks.
    """

    version: str
    since: datetime | None = None
    until: datetime | None = None
    as_of: datetime | None = None
    assessments: Path | None = None


def read_assessments(path: Path) -> pd.DataFrame:
    """Read and validate the assessments as sent (schema columns), without any outcome column.

    Raises
    ------
    DatasetFormatError
        If the file cannot be read.
    SchemaValidationError
        With every violation (column, row, reason).
    """
    frame = load_dataset(path)
    # The audit log never holds an outcome; outcomes come from the outcomes import only.
    return frame.drop(columns=[TARGET_FIELD], errors="ignore")


def run_monitoring(
    config: MonitoringConfig,
    scope: MonitoringScope,
    *,
    tracker: Tracker,
    settings: Settings | None = None,
) -> MonitorResult:
    """Monitor a version of ``config.registered_model`` on what the service recorded.

    Parameters
    ----------
    config
        Thresholds, windows and the registered model monitored.
    tracker
        The registry holding the version (and its training reference), where
        the monitoring run is logged.
    scope
        The version, the period and the assessments as sent.
    settings
        The service's settings (default: from ``DESIST_*``), naming its database
        and, when set, the drift snapshot its ``/metrics`` shows (``monitoring_snapshot``).

    Raises
    ------
    TrackingStoreError
        If the store fails, or the version has no training reference.
    NoScoresServedError
        If the version served no score in the period.
    DatabaseUnavailableError, SchemaValidationError, DatasetFormatError
        If the records or the assessments cannot be read, or break their schema.
    """
    version = scope.version
    reference = load_training_reference(tracker, config.registered_model, version)
    sent = None if scope.assessments is None else read_assessments(scope.assessments)
    settings = settings or get_settings()
    engine = make_engine(settings.resolved_database_url())
    try:
        inputs = load_monitoring_inputs(
            engine,
            version=version,
            model_name=config.registered_model,
            since=scope.since,
            until=scope.until,
            assessments=sent,
        )
    finally:
        engine.dispose()
    as_of = None if scope.as_of is None else pd.Timestamp(scope.as_of)
    # The inputs are named as monitor() takes them: scores, outcomes, decisions.
    result = monitor(
        config, tracker=tracker, reference=reference, version=version, as_of=as_of, **vars(inputs)
    )
    if settings.monitoring_snapshot is not None:
        publish_drift(result, settings.monitoring_snapshot)
    return result


def publish_drift(result: MonitorResult, path: Path) -> None:
    """Record ``result``'s drift in the snapshot the service's ``/metrics`` reads (its gauges).

    Only finite PSIs are published: a feature the assessments did not carry has none.
    """
    psi = {
        str(feature): float(value)
        for feature, value in zip(result.drift["feature"], result.drift["psi"], strict=True)
        if np.isfinite(value)
    }
    write_drift_snapshot(
        path,
        model=result.model,
        version=result.version,
        alert=result.alerted,
        psi=psi,
        run_id=result.run_id,
    )


def write_report(tracker: Tracker, result: MonitorResult, path: Path) -> Path:
    """Write the HTML report logged in ``result``'s run to ``path``; return it."""
    with tracker.activate():
        html = mlflow.artifacts.load_text(f"runs:/{result.run_id}/{REPORT_ARTIFACT}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
