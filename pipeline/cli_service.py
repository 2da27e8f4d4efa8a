"""``desist serve``, ``keys``, ``audit export``, ``outcomes import``: the service, its records.

The work is done by :mod:`serving.commands`, which reads the service's own
``DESIST_*`` settings, so every command here finds the database the service uses.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli_arguments import add_choice, add_group, utc_time

if TYPE_CHECKING:
    from pipeline.cli_arguments import Commands

#: Scopes of an API key (:data:`serving.keys.SCOPES`; a test keeps them equal). Written out
#: so that ``desist --help`` does not load the service.
KEY_SCOPES: tuple[str, ...] = ("score", "admin", "outcomes", "allocate")
#: The audit logs ``desist audit export`` writes (:data:`serving.audit_export.AUDIT_TABLES`).
AUDIT_KINDS: tuple[str, ...] = (
    "scores",
    "recommendations",
    "allocations",
    "decisions",
    "outcomes",
)

SERVE = (
    "Run the scoring service (API docs at /docs and /redoc). Everything else is read from "
    "DESIST_* environment variables: DESIST_MODEL_NAME and DESIST_MODEL_ALIAS (the versions "
    "served), DESIST_TRACKING_URI (the registry), DESIST_DATABASE_URL (API keys and audit "
    "log); see serving/settings.py."
)
WORKERS = "worker processes, each with its own copy of the model (default 1)"
IMPORT = (
    "Import a CSV or Parquet file of subject_ref, outcome_date (the first new sanction, empty "
    "if none) and follow_up_end into the audit database the service uses (DESIST_DATABASE_URL, "
    "else DESIST_HOME). Every violation is reported by row, column and reason, and a file with "
    "any violation records nothing."
)


def _serve(args: argparse.Namespace) -> int:
    from serving.commands import serve

    print(f"desist scoring service on http://{args.host}:{args.port} (docs at /docs)")
    serve(args.host, args.port, args.workers)
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from serving.commands import create_key

    key = create_key(args.client, args.scope)
    print(f"API key for {args.client} (scope {args.scope}); it is shown once, store it now:\n{key}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from serving.commands import revoke_key

    count = revoke_key(key_id=args.key_id, client=args.client)
    print(f"revoked {count} key(s); a running service refuses them within 30 s")
    return 0


def _audit_export(args: argparse.Namespace) -> int:
    from serving.commands import export_audit

    rows = export_audit(args.since, args.out, kind=args.kind)
    print(f"wrote {rows:,} {args.kind} audit rows to {args.out}")
    return 0


def _outcomes_import(args: argparse.Namespace) -> int:
    from serving.commands import import_outcomes

    import_id, rows = import_outcomes(args.file)
    print(f"imported {rows:,} outcome rows from {args.file} (import {import_id})")
    return 0


def add_service_commands(commands: Commands) -> None:
    """Add ``serve``, ``keys create|revoke``, ``audit export`` and ``outcomes import``."""
    serve = commands.add_parser("serve", help="run the HTTP scoring service", description=SERVE)
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help=WORKERS)
    serve.set_defaults(handler=_serve)

    key_actions = add_group(commands, "keys", "manage API keys of case systems")
    create = key_actions.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--client", required=True, help="name of the calling system")
    create.add_argument(
        "--scope",
        choices=KEY_SCOPES,
        required=True,
        help="score: score and record decisions; outcomes: import outcomes only; admin: all",
    )
    create.set_defaults(handler=_keys_create)
    revoke = key_actions.add_parser("revoke", help="revoke a key, or all keys of a client")
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--key-id", help="the key id: the 12 hex digits after dsk_")
    target.add_argument("--client", help="revoke every active key of this client")
    revoke.set_defaults(handler=_keys_revoke)

    audit_actions = add_group(commands, "audit", "the audit logs of the service")
    export = audit_actions.add_parser("export", help="write audit rows to CSV")
    export.add_argument(
        "--since", type=utc_time, help="ISO date or time (UTC if no zone), e.g. 2026-11-01"
    )
    export.add_argument("--out", type=Path, required=True, help="CSV file to write")
    add_choice(
        export,
        "--kind",
        AUDIT_KINDS,
        "which audit log: risk scores (default), pathway recommendations, pathway "
        "allocations (one row each; their people are in recommendations), practitioners' "
        "decisions or imported outcomes",
    )
    export.set_defaults(handler=_audit_export)

    outcome_actions = add_group(commands, "outcomes", "people's outcomes, for monitoring")
    imported = outcome_actions.add_parser(
        "import", help="import an outcomes file, whole or not at all", description=IMPORT
    )
    imported.add_argument("file", type=Path, help="outcomes file, .csv or .parquet")
    imported.set_defaults(handler=_outcomes_import)
