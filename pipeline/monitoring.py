"""Outcome monitoring: is a model version still calibrated for the people it now scores.

``monitor(config, *, tracker, scores, outcomes, decisions, reference)`` is the
job behind ``desist monitor``. On the scores a version served in a period it
checks, against the training reference stored at registration
(:mod:`pipeline.drift`): input drift per feature (PSI and missingness) and
the shift of the score distribution; and, on matured outcomes
(:func:`data.outcomes.link_outcomes`), AUC and calibration overall, by risk
band, by score decile and by audited group, with the intervals and the
noise test of :mod:`pipeline.evaluation`; and override rates by band and
group from practitioners' decisions. Before outcomes mature it checks drift
alone. Each check is a test with a known false alarm rate and a floor
(:mod:`pipeline.monitoring_checks`); the run is one MLflow run tagged with
the version, holding the figures, an HTML report and plots, and the version
is tagged with its latest monitoring run. :func:`assess` computes the same
without MLflow.

Exit codes for a scheduler (``desist monitor --fail-on-alert``):
:data:`EXIT_OK` (0) when nothing alerts or alerts are only reported, and
:data:`EXIT_ALERT` (1) when ``--fail-on-alert`` is given and a check alerts;
errors exit 2, as every ``desist`` command.
"""

from __future__ import annotations

import tempfile
import time as clock
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from data.decisions import OVERRIDDEN, latest_decisions
from data.outcomes import link_outcomes
from data.schema import ID_FIELD
from models.contract.tags import (
    MONITOR_ALERT,
    MONITOR_ALERTS,
    MONITOR_MODEL,
    MONITOR_STAGE,
    MONITOR_VERSION,
    TAG_LAST_MONITORING_ALERT,
    TAG_LAST_MONITORING_RUN,
)
from pipeline.calibration_metrics import ece_noise_test
from pipeline.drift import SCORE, TrainingReference, compare_binned, drift_table
from pipeline.evaluation import Evaluation, evaluate_scores
from pipeline.monitoring_checks import (
    Check,
    calibration_checks,
    checks_table,
    decide,
    discrimination_check,
    drift_checks,
    first_matured,
    override_checks,
)
from pipeline.monitoring_config import MonitoringConfig
from pipeline.tracking import Tracker

EXIT_OK = 0
EXIT_ALERT = 1
TAG_MODEL = MONITOR_MODEL
TAG_VERSION = MONITOR_VERSION
TAG_ALERT = MONITOR_ALERT
TAG_ALERTS = MONITOR_ALERTS
TAG_STAGE = MONITOR_STAGE
TAG_LAST_RUN = TAG_LAST_MONITORING_RUN
TAG_LAST_ALERT = TAG_LAST_MONITORING_ALERT


#: The HTML report among a monitoring run's artifacts.
REPORT_ARTIFACT = "monitoring_report.html"


@dataclass(frozen=True, eq=False)
class MonitorResult:
    """What a monitoring run found.

    Attributes
    ----------
    model, version
        The registered model and version monitored.
    n_scored, n_matured, n_decided
        Scores in the period, people with a matured outcome (each counted
        once, at their first score), scores with a decision.
    checks
        Every check (:data:`pipeline.monitoring_checks.CHECK_COLUMNS`).
    level
        Per-check significance level (the run's false alarm rate over the
        number of tested checks).
    drift
        One row per feature and one for the score
        (:data:`pipeline.drift.DRIFT_COLUMNS`).
    evaluation
        AUC, calibration, band and group tables on matured outcomes; None
        before outcomes mature.
    deciles
        Score deciles with observed and expected counts; empty before.
    overrides_by_band, overrides_by_group
        Override rates with Wilson intervals; empty without decisions.
    linkage
        How many scores were matured, still open, and so on.
    matured
        The matured scores (probability and outcome), for the plots.
    score_bins
        The score's reference bins: ``bin``, ``reference_share``, ``share``.
    run_id
        The MLflow run, when logged.
    """

    model: str
    version: str
    n_scored: int
    n_matured: int
    n_decided: int
    checks: pd.DataFrame
    level: float
    drift: pd.DataFrame
    evaluation: Evaluation | None
    deciles: pd.DataFrame
    overrides_by_band: pd.DataFrame
    overrides_by_group: pd.DataFrame
    linkage: dict[str, int]
    matured: pd.DataFrame
    score_bins: pd.DataFrame = field(default_factory=pd.DataFrame)
    headline: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    seconds: float = 0.0

    @property
    def alerted(self) -> bool:
        """Whether any check alerts."""
        return bool(self.checks["alert"].any())

    @property
    def alerts(self) -> list[str]:
        """Return the alerting checks in words, naming what moved."""
        return self.checks.loc[self.checks["alert"], "message"].tolist()

    @property
    def stage(self) -> str:
        """``outcomes`` when matured outcomes were checked, else ``drift only``."""
        return "drift only" if self.evaluation is None else "outcomes"

    def exit_code(self, *, fail_on_alert: bool) -> int:
        """Return the process exit code: :data:`EXIT_ALERT` only when asked to fail and alerted."""
        return EXIT_ALERT if fail_on_alert and self.alerted else EXIT_OK

    def metrics(self) -> dict[str, float]:
        """Flatten the headline figures into MLflow metric names (finite values only)."""
        out = dict(self.headline)
        for row in self.drift.itertuples(index=False):
            name = "score" if row.feature == SCORE else f"feature_{row.feature}"
            out[f"drift_{name}_psi"] = float(row.psi)
            out[f"drift_{name}_p"] = float(row.p_value)
        if self.evaluation is not None:
            out.update(self.evaluation.metrics("outcome_"))
        for row in self.overrides_by_band.itertuples(index=False):
            out[f"override_rate_{str(row.band).replace(' ', '_')}"] = float(row.rate)
        return {k: v for k, v in out.items() if np.isfinite(v)}


def _in_scope(scores: pd.DataFrame, version: str | None) -> pd.DataFrame:
    if version is not None and "model_version" in scores.columns:
        scores = scores[scores["model_version"].astype(str) == str(version)]
    return scores.reset_index(drop=True)


def _decided(scores: pd.DataFrame, decisions: pd.DataFrame | None) -> pd.DataFrame:
    """Return the scores that have a decision, with ``overridden`` (latest revision counts)."""
    if decisions is None or decisions.empty or "request_id" not in scores.columns:
        return scores.iloc[0:0].assign(overridden=pd.Series(dtype=bool))
    latest = latest_decisions(decisions)
    keys = pd.MultiIndex.from_arrays(
        [latest[c].to_numpy(dtype=object) for c in ("request_id", ID_FIELD)]
    )
    at = keys.get_indexer(
        pd.MultiIndex.from_arrays(
            [scores[c].to_numpy(dtype=object) for c in ("request_id", ID_FIELD)]
        )
    )
    found = at >= 0
    decision = latest["decision"].to_numpy(dtype=object)[at[found]]
    return scores[found].reset_index(drop=True).assign(overridden=decision == OVERRIDDEN)


def assess(
    config: MonitoringConfig,
    *,
    scores: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    decisions: pd.DataFrame | None,
    reference: TrainingReference,
    version: str | None = None,
    as_of: pd.Timestamp | None = None,
) -> MonitorResult:
    """Compute every monitoring check, without logging anything.

    Parameters
    ----------
    config
        Thresholds and windows.
    scores
        One row per score served in the period: ``subject_ref``, ``time``,
        ``risk_probability``, optionally ``request_id``, ``risk_band``,
        ``model_version`` (rows of other versions are left out), the
        assessment's feature columns (for drift) and audited attributes
        (for groups). A reference feature absent here is not checked.
    outcomes
        Validated outcomes (:func:`data.outcomes.validate_outcomes`), or None.
    decisions
        Validated decisions (:func:`data.decisions.validate_decisions`), or None.
    reference
        The version's training reference.
    version
        The version monitored.
    as_of
        The day monitoring looks from (default: the latest follow-up end).
    """
    started = clock.perf_counter()
    served = _in_scope(scores, version)
    if served.empty:
        raise ValueError("no scores of this model version in the period: nothing to monitor")
    if "risk_band" not in served.columns:
        served = served.assign(risk_band=config.bands.band_names(served[SCORE].to_numpy()))
    drift = drift_table(reference, served)
    score_bins = pd.DataFrame(columns=["bin", "reference_share", "share"])
    if reference.score is not None:
        score_row = compare_binned(reference.score, served[SCORE])
        drift = pd.concat([drift, pd.DataFrame([score_row])], ignore_index=True)
        counts = reference.score.count(served[SCORE])
        score_bins = pd.DataFrame(
            {
                "bin": reference.score.labels,
                "reference_share": np.asarray(reference.score.counts) / reference.score.n,
                "share": counts / counts.sum(),
            }
        )[:-1]  # scores are never missing
    checks: list[Check] = drift_checks(drift, config)
    headline: dict[str, float] = {"n_scored": float(len(served))}

    evaluation, deciles = None, pd.DataFrame()
    linkage: dict[str, int] = {}
    matured = served.iloc[0:0].assign(outcome=pd.Series(dtype="Int8"))
    if outcomes is not None:
        linked = link_outcomes(served, outcomes, window_months=config.window_months, as_of=as_of)
        linkage = {str(k): int(v) for k, v in linked["link_status"].value_counts().items()}
        # Sorted by score: every ECE sorts the scores again (200 times in the noise
        # test), and a stable sort of sorted input is linear.
        matured = first_matured(linked).sort_values(SCORE, kind="stable").reset_index(drop=True)
    headline["n_matured"] = float(len(matured))
    if len(matured) >= config.min_matured and matured["outcome"].nunique() == 2:
        y = matured["outcome"].to_numpy(dtype=np.int64)
        p = matured[SCORE].to_numpy(dtype=np.float64)
        groups = {a: matured[a] for a in config.audited if a in matured.columns}
        evaluation = evaluate_scores(
            y,
            p,
            bands=config.bands,
            groups=groups,
            n_bootstrap=config.n_bootstrap,
            seed=config.seed,
        )
        found, deciles = calibration_checks(y, p, groups, config, reference.calibration)
        checks += found
        found_auc = discrimination_check(
            evaluation.headline["roc_auc"],
            y,
            reference.roc_auc,
            reference.n_positive,
            reference.n_negative,
            config,
        )
        checks += [] if found_auc is None else [found_auc]
        noise_floor, noise_p = ece_noise_test(y, p, seed=config.seed)
        headline.update({"ece_noise_floor": noise_floor, "ece_noise_p": noise_p})

    decided = _decided(served, decisions)
    by_band, by_group = pd.DataFrame(), pd.DataFrame()
    if len(decided):
        groups = {a: decided[a] for a in config.audited if a in decided.columns}
        found, by_band, by_group = override_checks(decided, groups, config)
        checks += found
        headline["override_rate"] = float(decided["overridden"].mean())
    headline["n_decided"] = float(len(decided))

    decided_checks, level = decide(checks, config.false_alarm_rate)
    table = checks_table(decided_checks)
    headline["n_alerts"] = float(table["alert"].sum())
    return MonitorResult(
        model=config.registered_model,
        version=str(version) if version is not None else "unknown",
        n_scored=len(served),
        n_matured=len(matured),
        n_decided=len(decided),
        checks=table,
        level=level,
        drift=drift,
        evaluation=evaluation,
        deciles=deciles,
        overrides_by_band=by_band,
        overrides_by_group=by_group,
        linkage=linkage,
        matured=matured[[SCORE, "outcome"]] if len(matured) else matured,
        score_bins=score_bins,
        headline=headline,
        seconds=clock.perf_counter() - started,
    )


def _log(result: MonitorResult, config: MonitoringConfig) -> None:
    """Log a result's tags, figures, report, plots and tables to the active run."""
    from pipeline.monitoring_report import build_figures, figure_pngs, render_html

    mlflow.set_tags(
        {
            TAG_MODEL: result.model,
            TAG_VERSION: result.version,
            TAG_ALERT: str(result.alerted).lower(),
            TAG_ALERTS: "; ".join(result.alerts)[:5000] or "none",
            TAG_STAGE: result.stage,
        }
    )
    mlflow.log_params(
        {k: str(v) for k, v in config.model_dump(mode="json").items() if k != "bands"}
        | {"bands": ",".join(f"{c:g}" for c in config.bands.cutoffs)}
    )
    mlflow.log_metrics(result.metrics())
    pngs = figure_pngs(build_figures(result, config))
    mlflow.log_text(render_html(result, config, pngs), REPORT_ARTIFACT)
    with tempfile.TemporaryDirectory() as folder:
        for name, png in pngs.items():
            (Path(folder) / f"{name}.png").write_bytes(png)
        mlflow.log_artifacts(folder, "plots")
    mlflow.log_text(result.checks.to_csv(index=False), "tables/checks.csv")
    mlflow.log_text(result.drift.to_csv(index=False), "tables/drift.csv")
    if result.evaluation is not None:
        mlflow.log_text(result.evaluation.band_table.to_csv(index=False), "tables/bands.csv")
        mlflow.log_text(result.evaluation.group_table.to_csv(index=False), "tables/groups.csv")
        mlflow.log_text(result.deciles.to_csv(index=False), "tables/deciles.csv")
    if len(result.overrides_by_band):
        mlflow.log_text(result.overrides_by_band.to_csv(index=False), "tables/overrides_band.csv")
        mlflow.log_text(result.overrides_by_group.to_csv(index=False), "tables/overrides_group.csv")


def monitor(
    config: MonitoringConfig,
    *,
    tracker: Tracker,
    scores: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    decisions: pd.DataFrame | None,
    reference: TrainingReference,
    version: str,
    as_of: pd.Timestamp | None = None,
) -> MonitorResult:
    """Run every check (:func:`assess`) and log it as one MLflow run linked to the version.

    The run is tagged with the model and version; the registered version, if
    it exists in ``tracker``'s registry, is tagged with the run id and
    whether it alerted.

    Raises
    ------
    TrackingStoreError
        If the store fails.
    ValueError
        If no score of ``version`` is in ``scores``.
    """
    started = clock.perf_counter()
    result = assess(
        config,
        scores=scores,
        outcomes=outcomes,
        decisions=decisions,
        reference=reference,
        version=version,
        as_of=as_of,
    )
    experiment_id = tracker.experiment_id(config.experiment)
    with (
        tracker.activate(),
        mlflow.start_run(
            experiment_id=experiment_id, run_name=f"monitor-{config.registered_model}-v{version}"
        ) as run,
    ):
        _log(result, config)
    client = tracker.client()
    with tracker.reporting_failures():
        try:
            client.get_model_version(config.registered_model, str(version))
        except MlflowException:
            pass  # not registered in this store (e.g. monitoring a copy): the run tag links it
        else:
            client.set_model_version_tag(
                config.registered_model, str(version), TAG_LAST_RUN, run.info.run_id
            )
            client.set_model_version_tag(
                config.registered_model, str(version), TAG_LAST_ALERT, str(result.alerted).lower()
            )
    return MonitorResult(
        **{
            **{f: getattr(result, f) for f in result.__dataclass_fields__},
            "run_id": run.info.run_id,
            "seconds": clock.perf_counter() - started,
        }
    )
