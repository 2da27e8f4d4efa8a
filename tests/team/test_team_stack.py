"""The team MLflow server for real: PostgreSQL store, proxied artifacts, basic-auth roles.

One module-scoped server on a free loopback port, with throwaway databases,
is started by ``pipeline.team_stack.team_up`` and stopped (databases dropped)
afterwards. The data scientist trains and promotes through it with the public
jobs and credentials from the environment; the reviewer reads and is refused
writes (HTTP 403); the service account loads the model and nothing else.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

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
