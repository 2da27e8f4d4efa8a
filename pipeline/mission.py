"""The whole mission in one job: train, promote, serve, ask, check the audit, stop, report.

``desist mission`` (``make run``) trains the risk model and the pathway model,
promotes each through its gates, starts the real service on a free loopback
port with a key created for the run, asks it for one risk score and one
pathway recommendation over HTTP (for the assessment the API docs show,
``data.schema.EXAMPLE_ASSESSMENT``), checks that each answer was written to the
audit log, stops the service, revokes the key and prints one screen: what
was built, the figures, and the next commands.

A gate that refuses a model, a service that does not start, an answer that is
not 200 or a request the audit log does not hold stops the mission with a
:class:`MissionError` naming the step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from data.errors import DesistError
from data.schema import EXAMPLE_ASSESSMENT, NEVER_FEATURES
from pipeline.config import (
    PathwayTrainConfig,
    RiskTrainConfig,
    load_pathway_config,
    load_risk_config,
)
from pipeline.jobs import Progress, silent
from pipeline.registry import PromotionResult, promote
from pipeline.tracking import Tracker
from pipeline.train_pathways import PathwayTrainResult
from pipeline.train_pathways import train as train_pathways
from pipeline.train_risk import TrainResult
from pipeline.train_risk import train as train_risk
from serving.commands import create_key, revoke_key
from serving.launcher import audited_rows, running_service
from serving.settings import Settings

#: The client name of the key the mission creates, uses and revokes.
MISSION_CLIENT = "desist-mission"


class MissionError(DesistError):
    """A step of the mission failed; the message names it and what was seen."""


@dataclass(frozen=True, slots=True)
class ServedAnswer:
    """One request to the running service and what the audit log holds of it."""

    route: str
    model_version: str
    request_id: str
    audited_rows: int
    milliseconds: float
    #: One line: the score and band, or the programmes recommended.
    summary: str


@dataclass(frozen=True, slots=True)
class MissionResult:
    """Everything the mission built and checked."""

    risk: TrainResult
    risk_promotion: PromotionResult
    pathways: PathwayTrainResult
    pathway_promotion: PromotionResult
    score: ServedAnswer
    recommendation: ServedAnswer
    seconds: float


def run_mission(
    risk_config: RiskTrainConfig,
    pathway_config: PathwayTrainConfig,
    *,
    tracker: Tracker,
    settings: Settings,
    progress: Progress = silent,
) -> MissionResult:
    """Train and promote both models, then serve them and check one answer of each.

    Parameters
    ----------
    risk_config, pathway_config
        The two training jobs.
    tracker
        Where runs and the registry live; the service reads the same registry.
    settings
        The service's settings (its database holds the key and the audit rows);
        the model names are taken from the configs.
    progress
        Receives one line per step.

    Raises
    ------
    MissionError
        If a gate refuses a model, or the service does not answer and audit as it should.
    """
    started = time.perf_counter()
    progress("== Risk model ==")
    risk = train_risk(risk_config, tracker=tracker, progress=progress)
    risk_promotion = _promote(tracker, risk_config, risk.version)
    progress(f"Promoted {risk.registered_model} version {risk.version} (all gates passed)")
    progress("== Pathway model ==")
    pathways = train_pathways(pathway_config, tracker=tracker, progress=progress)
    pathway_promotion = _promote(tracker, pathway_config, pathways.version)
    progress(f"Promoted {pathways.registered_model} version {pathways.version} (all gates passed)")
    served = settings.model_copy(
        update={
            "tracking_uri": tracker.tracking_uri,
            "model_name": risk_config.registered_model,
            "pathway_model_name": pathway_config.registered_model,
        }
    )
    score, recommendation = _ask_the_service(served, risk.version, pathways.version, progress)
    return MissionResult(
        risk=risk,
        risk_promotion=risk_promotion,
        pathways=pathways,
        pathway_promotion=pathway_promotion,
        score=score,
        recommendation=recommendation,
        seconds=time.perf_counter() - started,
    )


def run_mission_from_files(
    risk_path: Path, pathway_path: Path, threads: int | None, progress: Progress
) -> str:
    """Run the mission on two TOML configs and the environment's store; return the screen."""
    tracker = Tracker.from_environment()
    settings = Settings()
    result = run_mission(
        load_risk_config(risk_path, threads=threads),
        load_pathway_config(pathway_path, threads=threads),
        tracker=tracker,
        settings=settings,
        progress=progress,
    )
    return render_screen(result, tracker, settings.resolved_home(), risk_path)


def _promote(
    tracker: Tracker, config: RiskTrainConfig | PathwayTrainConfig, version: str
) -> PromotionResult:
    result = promote(
        tracker, config.registered_model, version, config.gates, NEVER_FEATURES, actor="mission"
    )
    if not result.promoted:
        failed = "; ".join(result.decision.failures())
        raise MissionError(
            f"{config.registered_model} version {version} was not promoted: {failed}. "
            "The champion is unchanged."
        )
    return result


def _ask_the_service(
    settings: Settings, risk_version: str, pathway_version: str, progress: Progress
) -> tuple[ServedAnswer, ServedAnswer]:
    """Start the service, ask one score and one recommendation with a new key, stop it."""
    home = settings.resolved_home()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "mission-service.log"
    key = create_key(MISSION_CLIENT, "score", settings=settings)
    try:
        progress(f"Starting the service on a free loopback port (log: {log_path}) ...")
        with (
            running_service(settings, log_path) as service,
            httpx.Client(
                base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as client,
        ):
            progress(f"Service ready at {service.url}; asking for a score and a recommendation ...")
            score = _ask(client, settings, "/v1/risk-scores", "scores", risk_version)
            recommendation = _ask(
                client,
                settings,
                "/v1/pathway-recommendations",
                "recommendations",
                pathway_version,
            )
        progress("Service stopped.")
    finally:
        revoke_key(client=MISSION_CLIENT, settings=settings)
    return score, recommendation


def _ask(
    client: httpx.Client, settings: Settings, route: str, kind: str, version: str
) -> ServedAnswer:
    started = time.perf_counter()
    response = client.post(route, json={"assessments": [EXAMPLE_ASSESSMENT]})
    milliseconds = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise MissionError(f"POST {route} answered {response.status_code}: {response.text[:500]}")
    body = response.json()
    if body["model_version"] != version:
        raise MissionError(
            f"POST {route} was answered by version {body['model_version']}, not {version}"
        )
    rows = audited_rows(settings, kind, body["request_id"])
    if rows != 1:
        raise MissionError(
            f"POST {route}: the {kind} audit log holds {rows} rows of request "
            f"{body['request_id']}, not 1"
        )
    if kind == "scores":
        answer = body["scores"][0]
        summary = f"risk {answer['risk_probability']:.1%} ({answer['risk_band']})"
    else:
        programmes = [
            f"{p['programme']} ({p['estimated_reduction']:+.1%})"
            for p in body["recommendations"][0]["recommended"]
        ]
        summary = ", ".join(programmes) or "no programme clearly beneficial"
    version = body["model_version"]
    return ServedAnswer(route, version, body["request_id"], rows, milliseconds, summary)


def render_screen(
    result: MissionResult, tracker: Tracker, home: Path, risk_config_path: Path
) -> str:
    """Return the closing screen: what was built, the figures, the next commands."""
    risk, pathways, test = result.risk, result.pathways, result.risk.test
    values = pathways.policy_values
    lines = [
        "",
        f"desist mission complete in {result.seconds:.0f} s",
        "",
        "Built",
        f"  risk model     {risk.registered_model} version {risk.version} "
        f"({risk.selected_family}), champion; trained in {risk.seconds:.0f} s",
        f"  pathway model  {pathways.registered_model} version {pathways.version}, champion; "
        f"trained in {pathways.seconds:.0f} s",
        f"  store          {tracker.tracking_uri}",
        "",
        "Figures (test split)",
        f"  risk    AUC {test['roc_auc']:.3f} (95% CI {test['roc_auc_ci_low']:.3f}-"
        f"{test['roc_auc_ci_high']:.3f}), ECE {test['ece']:.3f}, Brier {test['brier']:.3f}; "
        f"largest group calibration gap {risk.max_group_calibration_gap:.3f}",
    ]
    for name in ("desist top-1", "needs-score rule (RNR)"):
        if name in values:
            mean, low, high = values[name]
            lines.append(
                f"  pathway {name:<24} reduction in 12-month re-offending {mean:+.3f} "
                f"({low:+.3f} to {high:+.3f})"
            )
    lines.append(f"  pathway people with a recommendation: {pathways.recommended_share:.0%}")
    lines += ["", "Served and audited (a key created for the run, revoked after)"]
    for answer in (result.score, result.recommendation):
        lines.append(
            f"  POST {answer.route:<29} version {answer.model_version}, "
            f"{answer.milliseconds:.0f} ms, {answer.audited_rows} audit row: {answer.summary}"
        )
    lines += [
        "",
        "Next",
        f"  serve:         DESIST_HOME={home} .venv/bin/desist serve",
        f"  a key:         DESIST_HOME={home} .venv/bin/desist keys create --client case-system "
        "--scope score",
        "  score a file:  .venv/bin/desist synth --rows 1000 --out cohort.csv && "
        f"DESIST_HOME={home} .venv/bin/desist score --input cohort.csv --output scores.csv",
        f"  retrain:       .venv/bin/desist train risk --config {risk_config_path}",
        f"  MLflow UI:     {tracker.ui_command()}",
    ]
    return "\n".join(lines)
