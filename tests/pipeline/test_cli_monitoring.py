"""``desist monitor`` end to end: a served deployment, its outcomes imported, the version checked.

One scorecard is trained on the small config (its registration stores the
training reference) and promoted; the service runs in process on an SQLite
audit database, MLflow in the same temporary home. Two later cohorts are
scored through ``POST /v1/risk-scores`` one after the other, decisions
recorded through ``POST /v1/decisions`` and their truth files imported with
``desist outcomes import``: the first from the training population, the
second 0.3 sd older. ``desist monitor`` over each one's period stays quiet on
the first and alerts on the second, naming age.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from benchmarks.support.configs import small_config
from data.shifts import ShiftConfig
from models.contract.tags import MONITOR_VERSION, TAG_LAST_MONITORING_RUN
from models.risk import ScorecardSettings
from pipeline.cli import main
from pipeline.config import GateConfig
from pipeline.deployment_simulation import ServedCohort, deploy_through_service
from pipeline.registry import promote
from pipeline.tracking import Tracker
from pipeline.train_risk import train
from serving.app import create_app
from serving.commands import create_key
from serving.settings import Settings, get_settings

ROWS = 1_500
CONFIG = Path(__file__).parents[2] / "configs" / "monitoring.toml"


@dataclass(frozen=True)
class Deployment:
    """The home holding the registry and audit database, and each cohort's period and files."""

    home: Path
    tracker: Tracker
    periods: dict[str, tuple[str, str]]
    cohorts: dict[str, ServedCohort]


def _now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("monitor-home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DESIST_HOME", str(home))
        for variable in ("MLFLOW_TRACKING_URI", "DESIST_DATABASE_URL", "DESIST_TRACKING_URI"):
            env.delenv(variable, raising=False)
        get_settings.cache_clear()
        tracker = Tracker.for_home(home)
        result = train(small_config(models=(ScorecardSettings(),)), tracker=tracker)
        gates = GateConfig(auc_tolerance=1.0)
        assert promote(tracker, result.registered_model, result.version, gates, ()).promoted
        settings = Settings(home=home, rate_limit_per_second=0, unverified_per_second=0)
        key = create_key("case-system", "score", settings=settings)
        periods, cohorts = {}, {}
        with TestClient(create_app(settings)) as client:
            for name, shift, seed in (
                ("unshifted", ShiftConfig(), 21),
                ("older", ShiftConfig(age_shift_sd=0.3), 22),
            ):
                since = _now()
                cohorts[name] = deploy_through_service(
                    client, key, shift, rows=ROWS, seed=seed, folder=home / "files"
                )
                periods[name] = (since, _now())
        for cohort in cohorts.values():
            assert main(["outcomes", "import", str(cohort.outcomes)]) == 0
        yield Deployment(home, tracker, periods, cohorts)
    get_settings.cache_clear()


def _monitor(deployment: Deployment, name: str, *options: str) -> int:
    since, until = deployment.periods[name]
    period = ["--since", since, "--until", until]
    return main(
        ["monitor", "--version", "1", "--config", "configs/monitoring.toml", *period, *options]
    )


def test_an_unshifted_deployment_stays_quiet_and_is_logged_with_the_version(
    deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    report = tmp_path / "report.html"
    cohort = deployment.cohorts["unshifted"]
    options = ["--assessments", str(cohort.assessments), "--report", str(report)]
    assert _monitor(deployment, "unshifted", *options, "--fail-on-alert") == 0
    printed = capsys.readouterr().out
    assert f"Monitoring desist-risk version 1: {ROWS:,} scores" in printed
    assert "stage:  with outcomes" in printed and "no alert" in printed
    assert "largest input drift (PSI): " in printed  # the assessments were joined
    assert "<html" in report.read_text()
    (run_id,) = [line.split()[-1] for line in printed.splitlines() if "run:" in line]
    client = deployment.tracker.client()
    assert client.get_run(run_id).data.tags[MONITOR_VERSION] == "1"
    tags = client.get_model_version("desist-risk", "1").tags
    assert tags[TAG_LAST_MONITORING_RUN] == run_id


def test_an_older_population_alerts_naming_age(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assessments = str(deployment.cohorts["older"].assessments)
    assert _monitor(deployment, "older", "--assessments", assessments, "--fail-on-alert") == 1
    printed = capsys.readouterr().out
    assert "ALERT:" in printed
    alerts = [line.strip() for line in printed.splitlines() if line.strip().startswith("- ")]
    assert any(alert.startswith("- drift age:") for alert in alerts), alerts
    # Without --fail-on-alert an alert is reported and the command succeeds.
    assert _monitor(deployment, "older", "--assessments", assessments) == 0


def test_before_outcomes_mature_it_checks_drift_only(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    today = datetime.now(UTC).date().isoformat()
    assert _monitor(deployment, "unshifted", "--as-of", today) == 0
    printed = capsys.readouterr().out
    assert "stage:  drift only" in printed
    assert "largest input drift" not in printed  # no assessments: the score's shift alone


def test_a_version_that_served_nothing_is_a_clear_error(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert (
        main(["monitor", "--version", "1", "--since", "2000-01-01", "--until", "2000-01-02"]) == 2
    )
    assert "served no score in the period" in capsys.readouterr().err
