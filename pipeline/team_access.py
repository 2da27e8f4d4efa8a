"""Who may do what on the team's MLflow server: its users, roles and grants.

MLflow's ``basic-auth`` app runs with ``default_permission = NO_PERMISSIONS``,
so a user sees nothing until a role grants it. :data:`TEAM_ROLES` names the
three kinds of team member and what each role may do on every experiment and
registered model (pattern ``*``, so new ones are covered without re-granting):

- ``data-scientist``: EDIT (train, log, register, tag and move aliases);
- ``reviewer``: READ on runs, artifacts and the registry, no write;
- ``service``: READ on registered and logged models only (what serving and
  batch scoring need to load ``models:/NAME@champion``).

Passwords come only from the environment (``MLFLOW_AUTH_ADMIN_PASSWORD`` and
one ``DESIST_TEAM_<ROLE>_PASSWORD`` per role) and are sent only to the
server's own API, never printed or logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import requests

from data.errors import DesistError

ADMIN_USER = "admin"
_REQUIRED_SECRETS = ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD")
# MLflow's auth app refuses shorter passwords.
_MIN_PASSWORD = 12
#: Roles live in MLflow's default workspace when workspaces are off.
WORKSPACE = "default"


class TeamStackError(DesistError):
    """The team stack cannot be started, provisioned or stopped."""


@dataclass(frozen=True, slots=True)
class TeamRole:
    """One kind of team member: an MLflow user and what it may do.

    ``grants`` are ``(resource_type, permission)`` pairs applied to every
    resource of that type (pattern ``*``), so new experiments and models are
    covered without re-granting.
    """

    name: str
    default_user: str
    grants: tuple[tuple[str, str], ...]
    description: str

    def variable(self, what: Literal["USER", "PASSWORD"]) -> str:
        """Name the environment variable of this role's user name or password.

        ``DESIST_TEAM_<ROLE>_USER`` may rename the user; ``..._PASSWORD`` holds its password.
        """
        return f"DESIST_TEAM_{self.name.upper().replace('-', '_')}_{what}"

    @property
    def password_variable(self) -> str:
        """The environment variable that holds this role's password."""
        return self.variable("PASSWORD")

    def username(self, environ: Mapping[str, str]) -> str:
        """Return this role's user name (``DESIST_TEAM_<ROLE>_USER`` or the default)."""
        return environ.get(self.variable("USER")) or self.default_user


TEAM_ROLES = (
    TeamRole(
        "data-scientist",
        "desist-ds",
        (("experiment", "EDIT"), ("registered_model", "EDIT")),
        "trains, registers and promotes models",
    ),
    TeamRole(
        "reviewer",
        "desist-reviewer",
        (("experiment", "READ"), ("registered_model", "READ")),
        "reads runs, artifacts and the registry; changes nothing",
    ),
    TeamRole(
        "service",
        "desist-service",
        # A logged model's files sit under its experiment's artifact root, and MLflow's
        # artifact proxy wants READ on the experiment as well as on the logged model; the
        # DENY on runs and traces keeps the runs themselves (and their artifacts) closed.
        (
            ("registered_model", "READ"),
            ("logged_model", "READ"),
            ("experiment", "READ"),
            ("run", "DENY"),
            ("trace", "DENY"),
        ),
        "the scoring service and batch jobs: reads registered models only",
    ),
)


def check_secrets(environ: Mapping[str, str]) -> None:
    """Check that every secret the stack needs is set (and long enough), naming none's value.

    Raises
    ------
    TeamStackError
        Naming the variables that are missing or too short.
    """
    missing = [name for name in _REQUIRED_SECRETS if not environ.get(name)]
    short = [
        role.password_variable
        for role in TEAM_ROLES
        if len(environ.get(role.password_variable, "")) < _MIN_PASSWORD
    ]
    if len(environ.get("MLFLOW_AUTH_ADMIN_PASSWORD", "")) < _MIN_PASSWORD:
        short.append("MLFLOW_AUTH_ADMIN_PASSWORD")
    if missing or short:
        raise TeamStackError(
            "set in the environment: "
            + ", ".join(missing + [f"{name} (>= {_MIN_PASSWORD} characters)" for name in short])
        )


class _Admin:
    """The auth app's REST API, called as the admin (credentials passed, not exported)."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.auth = (ADMIN_USER, password)

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(method, f"{self.url}{path}", timeout=30, **kwargs)
        return response

    def ok(self, response: requests.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 400:
            # The body names the problem; it never echoes a password.
            raise TeamStackError(f"{what}: HTTP {response.status_code} {response.text[:200]}")
        return response.json() if response.content else {}


def _grant_missing(
    admin: _Admin, role_id: int, role_name: str, grants: tuple[tuple[str, str], ...]
) -> None:
    """Add the grants ``role_id`` lacks (a role made by an older desist gets the new ones)."""
    listed = admin.ok(
        admin.call(
            "GET", "/api/3.0/mlflow/roles/permissions/list", params={"role_id": str(role_id)}
        ),
        f"permissions of {role_name}",
    ).get("role_permissions", [])
    held = {
        (str(p["resource_type"]), str(p["permission"]))
        for p in listed
        if p["resource_pattern"] == "*"
    }
    for resource_type, permission in grants:
        if (resource_type, permission) in held:
            continue
        admin.ok(
            admin.call(
                "POST",
                "/api/3.0/mlflow/roles/permissions/add",
                json={
                    "role_id": role_id,
                    "resource_type": resource_type,
                    "resource_pattern": "*",
                    "permission": permission,
                },
            ),
            f"grant {permission} on {resource_type} to {role_name}",
        )


def provision_users(url: str, environ: Mapping[str, str] = os.environ) -> None:
    """Create each role's user and role (idempotent) and grant its permissions.

    A user that exists keeps its password: rotate it with MLflow's
    ``update-password`` API, not by re-running this.

    Raises
    ------
    TeamStackError
        If a secret is missing or the server refuses a call.
    """
    check_secrets(environ)
    admin = _Admin(url, environ["MLFLOW_AUTH_ADMIN_PASSWORD"])
    roles = admin.ok(
        admin.call("GET", "/api/3.0/mlflow/roles/list", params={"workspace": WORKSPACE}),
        "list roles",
    ).get("roles", [])
    existing = {str(r["name"]): int(r["id"]) for r in roles}
    for role in TEAM_ROLES:
        user = role.username(environ)
        found = admin.call("GET", "/api/2.0/mlflow/users/get", params={"username": user})
        if found.status_code == 404 or (
            found.status_code >= 400 and "RESOURCE_DOES_NOT_EXIST" in found.text
        ):
            admin.ok(
                admin.call(
                    "POST",
                    "/api/2.0/mlflow/users/create",
                    json={"username": user, "password": environ[role.password_variable]},
                ),
                f"create user {user}",
            )
        else:
            admin.ok(found, f"get user {user}")
        role_name = f"desist-{role.name}"
        if role_name in existing:
            role_id = existing[role_name]
        else:
            created = admin.ok(
                admin.call(
                    "POST",
                    "/api/3.0/mlflow/roles/create",
                    json={
                        "workspace": WORKSPACE,
                        "name": role_name,
                        "description": role.description,
                    },
                ),
                f"create role {role_name}",
            )
            role_id = int(created["role"]["id"])
        _grant_missing(admin, role_id, role_name, role.grants)
        assigned = admin.ok(
            admin.call("GET", "/api/3.0/mlflow/users/roles/list", params={"username": user}),
            f"roles of {user}",
        ).get("roles", [])
        if role_id not in {int(r["id"]) for r in assigned}:
            admin.ok(
                admin.call(
                    "POST",
                    "/api/3.0/mlflow/roles/assign",
                    json={"username": user, "role_id": role_id},
                ),
                f"assign {role_name} to {user}",
            )


def client_environment(
    url: str, role: TeamRole, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """Return the variables a member of ``role`` exports to use the stack (password included).

    For a job's environment only: never print or log the result.
    """
    return {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": role.username(environ),
        "MLFLOW_TRACKING_PASSWORD": environ[role.password_variable],
    }
