"""The team stack's launchers without starting anything: configs, commands, secrets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.replica_stack import ReplicaStackConfig, haproxy_config_text
from pipeline.team_access import TEAM_ROLES, TeamStackError, check_secrets, client_environment
from pipeline.team_stack import TeamStackConfig, server_command, write_auth_config
from tests.team_parts import require

SECRETS = {
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-0123456789",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-password-0123",
    **{role.password_variable: f"{role.name}-password-0123" for role in TEAM_ROLES},
}


def test_the_auth_config_grants_nothing_by_default_and_holds_no_secret(tmp_path: Path) -> None:
    config = TeamStackConfig(home=tmp_path, port=5999)
    text = write_auth_config(config).read_text()
    assert "default_permission = NO_PERMISSIONS" in text
    assert f"database_uri = {config.postgres}/{config.auth_database}" in text
    assert not any(secret in text for secret in SECRETS.values())


def test_the_server_command_proxies_artifacts_with_basic_auth_and_no_secret(
    tmp_path: Path,
) -> None:
    config = TeamStackConfig(home=tmp_path, port=5999)
    command = server_command(config)
    joined = " ".join(command)
    assert "--app-name basic-auth" in joined and "--serve-artifacts" in joined
    assert command[command.index("--artifacts-destination") + 1] == str(tmp_path / "artifacts")
    assert command[command.index("--backend-store-uri") + 1].startswith("postgresql://")
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert not any(secret in joined for secret in SECRETS.values())


def test_missing_or_short_secrets_are_named_without_their_values() -> None:
    check_secrets(SECRETS)
    short = {**SECRETS, "DESIST_TEAM_REVIEWER_PASSWORD": "tiny-secret"}
    with pytest.raises(TeamStackError, match="DESIST_TEAM_REVIEWER_PASSWORD") as caught:
        check_secrets(short)
    assert "tiny-secret" not in str(caught.value)
    missing = {k: v for k, v in SECRETS.items() if k != "MLFLOW_FLASK_SERVER_SECRET_KEY"}
    with pytest.raises(TeamStackError, match="MLFLOW_FLASK_SERVER_SECRET_KEY"):
        check_secrets(missing)


def test_each_role_gets_its_own_user_and_the_reviewer_only_reads() -> None:
    grants = {role.name: dict(role.grants) for role in TEAM_ROLES}
    assert set(grants["reviewer"].values()) == {"READ"}
    assert grants["service"]["run"] == "DENY" and "EDIT" not in grants["service"].values()
    assert grants["data-scientist"]["registered_model"] == "EDIT"
    env = client_environment("http://127.0.0.1:5999", TEAM_ROLES[1], SECRETS)
    assert env == {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5999",
        "MLFLOW_TRACKING_USERNAME": "desist-reviewer",
        "MLFLOW_TRACKING_PASSWORD": SECRETS["DESIST_TEAM_REVIEWER_PASSWORD"],
    }


@pytest.mark.team
def test_haproxy_accepts_the_replica_config(tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    require(None if Path(haproxy).exists() else "haproxy is not installed (apt-get install)")
    config = ReplicaStackConfig(home=tmp_path, proxy_port=18080, replica_ports=(18001, 18002))
    text = haproxy_config_text(config)
    assert text.count("server replica") == 2 and "option httpchk GET /readyz" in text
    config.haproxy_config.write_text(text)
    checked = subprocess.run([haproxy, "-c", "-f", str(config.haproxy_config)], capture_output=True)
    assert checked.returncode == 0, checked.stderr.decode()
