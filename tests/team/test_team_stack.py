"""The team MLflow server for real: PostgreSQL store, proxied artifacts, basic-auth roles.

One module-scoped server on a free loopback port, with throwaway databases,
is started by ``pipeline.team_stack.team_up`` and stopped (databases dropped)
afterwards. The data scientist trains and promotes through it with the public
jobs and credentials from the environment; the reviewer reads and is refused
writes (HTTP 403); the service account loads the model and nothing else. The
data scientist also scores a file with the champion, and monitors what the
service (as the service account) scored, logging the run with the version.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from data.schema import NEVER_FEATURES
from models.risk import ScorecardSettings
from pipeline.config import GateConfig
from pipeline.team_access import TEAM_ROLES, client_environment
from pipeline.team_stack import TeamStackConfig, drop_database, team_down, team_up
from tests.pipeline.conftest import small_config
from tests.team_parts import free_port, mlflow_server_problem, require

pytestmark = pytest.mark.team

ROLE = {role.name: role for role in TEAM_ROLES}
MONITORING_CONFIG = Path(__file__).parents[2] / "configs" / "monitoring.toml"
# Small test splits make ECE noisy; the gates themselves are tested elsewhere.
GATES = GateConfig(auc_tolerance=0.01)


@dataclass(frozen=True)
class Api:
    """MLflow's REST API as one team member: ``get("runs/get", run_id=...)``."""

    session: requests.Session
    url: str

    def get(self, path: str, **params: str) -> requests.Response:
        return self.session.get(f"{self.url}/api/2.0/mlflow/{path}", params=params)

    def post(self, path: str, **body: str) -> requests.Response:
        return self.session.post(f"{self.url}/api/2.0/mlflow/{path}", json=body)

    def delete(self, path: str, **body: str) -> requests.Response:
        return self.session.delete(f"{self.url}/api/2.0/mlflow/{path}", json=body)


@dataclass(frozen=True)
class Stack:
    config: TeamStackConfig
    environ: dict[str, str]

    def api(self, role: str) -> Api:
        session = requests.Session()
        env = client_environment(self.config.url, ROLE[role], self.environ)
        session.auth = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
        return Api(session, self.config.url)

    def use(self, monkeypatch: pytest.MonkeyPatch, role: str) -> None:
        for name, value in client_environment(self.config.url, ROLE[role], self.environ).items():
            monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require(mlflow_server_problem())
    suffix = uuid.uuid4().hex[:10]
    config = TeamStackConfig(
        home=tmp_path_factory.mktemp("team"),
        port=free_port(),
        database=f"desist_mlflow_test_{suffix}",
        auth_database=f"desist_mlflow_auth_test_{suffix}",
    )
    environ = {
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        "MLFLOW_AUTH_ADMIN_PASSWORD": f"admin-{secrets.token_hex(8)}",
        **{role.password_variable: f"{role.name}-{secrets.token_hex(8)}" for role in TEAM_ROLES},
    }
    try:
        team_up(config, {**os.environ, **environ})
        yield Stack(config, environ)
    finally:
        team_down(config)
        for name in (config.database, config.auth_database):
            drop_database(config.postgres, name)


@pytest.fixture(scope="module")
def trained(stack: Stack) -> Iterator[tuple[str, str, str]]:
    """The data scientist trains and promotes through the server: (run id, model, version)."""
    from models.contract.tags import CHAMPION
    from pipeline.registry import promote
    from pipeline.tracking import Tracker
    from pipeline.train_risk import train

    with pytest.MonkeyPatch.context() as monkeypatch:
        stack.use(monkeypatch, "data-scientist")
        tracker = Tracker.from_environment()
        assert tracker.tracking_uri == stack.config.url
        config = small_config(
            models=(ScorecardSettings(),), experiment=f"team-{uuid.uuid4().hex[:6]}"
        )
        result = train(config, tracker=tracker)
        decision = promote(tracker, result.registered_model, result.version, GATES, NEVER_FEATURES)
        assert decision.promoted, decision.decision.failures()
        champion = tracker.client().get_model_version_by_alias(result.registered_model, CHAMPION)
        assert str(champion.version) == str(result.version)
        yield result.run_id, result.registered_model, str(result.version)


def test_a_data_scientist_trains_and_promotes_through_the_server(
    stack: Stack, trained: tuple[str, str, str]
) -> None:
    run_id, name, version = trained
    reviewer = stack.api("reviewer")
    assert reviewer.get("runs/get", run_id=run_id).status_code == 200
    # Artifacts went through the server's proxy into its own folder.
    assert any(stack.config.artifacts.rglob("MLmodel"))
    alias = reviewer.get("registered-models/alias", name=name, alias="champion")
    assert alias.status_code == 200 and alias.json()["model_version"]["version"] == version


def test_no_credential_reaches_tags_params_or_the_server_log(
    stack: Stack, trained: tuple[str, str, str]
) -> None:
    run_id, name, version = trained
    reviewer = stack.api("reviewer")
    run = reviewer.get("runs/get", run_id=run_id).text
    model = reviewer.get("model-versions/get", name=name, version=version).text
    log = stack.config.log_file.read_text()
    config_file = stack.config.auth_config.read_text()
    for secret in stack.environ.values():
        assert secret not in run and secret not in model
        assert secret not in log and secret not in config_file


def test_the_reviewer_reads_runs_artifacts_and_models_but_changes_nothing(
    stack: Stack, trained: tuple[str, str, str]
) -> None:
    run_id, name, version = trained
    reviewer = stack.api("reviewer")
    artifacts = reviewer.get("artifacts/list", run_id=run_id)
    assert artifacts.status_code == 200 and artifacts.json()["files"]
    refused = {
        "move the alias": reviewer.post(
            "registered-models/alias", name=name, alias="champion", version=version
        ),
        "tag a version": reviewer.post(
            "model-versions/set-tag", name=name, version=version, key="k", value="v"
        ),
        "tag the run": reviewer.post("runs/set-tag", run_id=run_id, key="k", value="v"),
        "delete the version": reviewer.delete("model-versions/delete", name=name, version=version),
    }
    assert {what: r.status_code for what, r in refused.items()} == dict.fromkeys(refused, 403)


def test_the_service_account_loads_the_champion_and_reads_no_run(
    stack: Stack, trained: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.calibration import ScoreCalibratedClassifier
    from models.contract.fetch import fetch_model
    from models.contract.tags import CHAMPION

    run_id, name, version = trained
    stack.use(monkeypatch, "service")
    loaded = fetch_model(
        f"models:/{name}@{CHAMPION}", ScoreCalibratedClassifier, tracking_uri=stack.config.url
    )
    assert loaded.verified and loaded.version == version
    service = stack.api("service")
    assert service.get("runs/get", run_id=run_id).status_code == 403
    assert service.get("artifacts/list", run_id=run_id).status_code == 403
    moved = service.post("registered-models/alias", name=name, alias="champion", version=version)
    assert moved.status_code == 403


def test_without_credentials_the_server_answers_401(stack: Stack) -> None:
    anonymous = requests.get(
        f"{stack.config.url}/api/2.0/mlflow/experiments/search", params={"max_results": 1}
    )
    assert anonymous.status_code == 401


def test_batch_scoring_through_the_server_verifies_the_champion_and_keeps_no_credential(
    stack: Stack, trained: tuple[str, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    from data.schema import TARGET_FIELD
    from data.synthetic import SynthConfig, generate_cohort
    from models.contract.tags import CHAMPION
    from pipeline.batch_scoring import BatchScoreConfig, score_file
    from pipeline.tracking import Tracker

    _, name, version = trained
    stack.use(monkeypatch, "data-scientist")
    cohort, _ = generate_cohort(SynthConfig(rows=500, seed=31))
    source = tmp_path / "assessments.parquet"
    cohort.drop(columns=[TARGET_FIELD], errors="ignore").to_parquet(source)
    config = BatchScoreConfig(
        model_uri=f"models:/{name}@{CHAMPION}",
        input=source,
        output=tmp_path / "scores.parquet",
        threads=1,
    )
    result = score_file(config, tracker=Tracker.from_environment())
    assert result.model.verified and result.model.version == version
    assert result.model.digest
    assert result.rows_read == 500 and result.rows_scored + result.rows_rejected == 500
    scores = pd.read_parquet(result.output)
    assert len(scores) == result.rows_scored > 0
    assert scores["risk_probability"].between(0, 1, inclusive="neither").all()
    written = result.output.read_bytes() + result.rejects.read_bytes()
    for secret in stack.environ.values():
        assert secret.encode() not in written


def test_monitoring_through_the_server_reads_the_reference_and_logs_with_the_version(
    stack: Stack, trained: tuple[str, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from data.shifts import ShiftConfig
    from models.contract.tags import MONITOR_STAGE, MONITOR_VERSION, TAG_LAST_MONITORING_RUN
    from pipeline.deployment_simulation import deploy_through_service
    from pipeline.monitoring_config import load_monitoring_config
    from pipeline.monitoring_job import MonitoringScope, run_monitoring
    from pipeline.tracking import Tracker
    from serving.app import create_app
    from serving.commands import create_key
    from serving.settings import Settings

    _, name, version = trained
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'audit.db'}",
        tracking_uri=stack.config.url,
        model_name=name,
        rate_limit_per_second=0,
        unverified_per_second=0,
    )
    key = create_key("case-system", "score", settings=settings)
    with monkeypatch.context() as service:
        # The service loads the champion with its own account's credentials only.
        stack.use(service, "service")
        since = datetime.now(UTC)
        with TestClient(create_app(settings)) as client:
            cohort = deploy_through_service(
                client, key, ShiftConfig(), rows=400, seed=32, folder=tmp_path / "files"
            )
        until = datetime.now(UTC)
    stack.use(monkeypatch, "data-scientist")
    config = load_monitoring_config(MONITORING_CONFIG).model_copy(update={"registered_model": name})
    scope = MonitoringScope(version, since, until, assessments=cohort.assessments)
    result = run_monitoring(config, scope, tracker=Tracker.from_environment(), settings=settings)
    # No outcome was imported: the score's and the inputs' drift against the stored reference.
    assert result.stage == "drift only" and result.n_scored == 400
    assert not result.drift.empty and result.run_id
    reviewer = stack.api("reviewer")
    run = reviewer.get("runs/get", run_id=result.run_id)
    assert run.status_code == 200
    tags = {tag["key"]: tag["value"] for tag in run.json()["run"]["data"]["tags"]}
    assert tags[MONITOR_VERSION] == version and tags[MONITOR_STAGE] == "drift only"
    model = reviewer.get("model-versions/get", name=name, version=version)
    version_tags = {tag["key"]: tag["value"] for tag in model.json()["model_version"]["tags"]}
    assert version_tags[TAG_LAST_MONITORING_RUN] == result.run_id
    for secret in stack.environ.values():
        assert secret not in run.text
