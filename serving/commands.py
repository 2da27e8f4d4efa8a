"""Plain functions behind ``desist serve``, ``keys``, ``audit`` and ``outcomes import``.

The CLI parses arguments and prints; these do the work, reading the same
``DESIST_*`` settings as the service.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import uvicorn

from serving.audit_export import AUDIT_TABLES
from serving.audit_export import export_audit as _export_audit
from serving.database import make_engine
from serving.keys import KeyStore
from serving.metrics import MULTIPROCESS_ENV, fresh_multiprocess_dir
from serving.oversight import import_outcomes as _import_outcomes
from serving.protocol import PROTOCOL
from serving.security import check_listen_address, is_loopback
from serving.settings import Settings, get_settings

APP_FACTORY = "serving.app:create_app_from_env"


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the scoring service under uvicorn until interrupted.

    Parameters
    ----------
    host, port
        Where to listen; the default keeps the service on loopback.
    workers
        Worker processes; each loads its own copy of the model.

    Raises
    ------
    UnsafeConfigurationError
        If ``host`` is not a loopback address and no API key exists.
    """
    # The service's standard error carries one JSON object per line; MLflow's progress bar
    # for model downloads would interleave text that no log reader can parse.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = get_settings()
    if not is_loopback(host):
        engine = make_engine(settings.resolved_database_url())
        try:
            check_listen_address(host, KeyStore(engine).active_count())
        finally:
            engine.dispose()
    if workers > 1 and MULTIPROCESS_ENV not in os.environ:
        # Each worker would report only its own counts, so a scrape would show one of N;
        # the folder is per port and emptied, so a restart starts from zero.
        os.environ.update(fresh_multiprocess_dir(settings.metrics_dir(port)))
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # uvloop + httptools: the pure-Python loop and parser cost tens of ms per request;
        # httptools with the header size and time limits it lacks (serving.protocol).
        loop="uvloop",
        http=PROTOCOL,
        # Forwarded headers only from the configured proxies; by default from nobody
        # (uvicorn's own default trusts 127.0.0.1, which let a local caller pick its address).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        server_header=False,
        # The app writes its own JSON line per request; uvicorn's access log would repeat it.
        access_log=False,
        log_level="warning",
    )


@contextmanager
def _keys(settings: Settings | None) -> Iterator[KeyStore]:
    """Yield the key store, closing its connections after: a command leaves no file open.

    An SQLite connection left to the garbage collector can close at any later moment,
    and SQLite may hand its still-writable descriptor to the next connection to the
    same file in this process, even one meant to find the file read-only.
    """
    engine = make_engine((settings or get_settings()).resolved_database_url())
    try:
        yield KeyStore(engine)
    finally:
        engine.dispose()


def create_key(client: str, scope: str, settings: Settings | None = None) -> str:
    """Create an API key for ``client`` with one of ``serving.keys.SCOPES``; return it.

    The key is returned once (print it for the operator); only a salted hash is stored.

    Raises
    ------
    KeyStoreError
        If the scope is unknown or the client name is invalid.
    """
    with _keys(settings) as keys:
        _key_id, key = keys.create_key(client, scope)
    return key


def revoke_key(
    *, key_id: str | None = None, client: str | None = None, settings: Settings | None = None
) -> int:
    """Revoke one key by its id (the part after ``dsk_``) or every key of a client.

    Returns
    -------
    int
        How many keys were revoked. A running service stops accepting them
        within its key cache time (30 s).

    Raises
    ------
    KeyStoreError
        If neither or both are given, or no active key matches.
    """
    with _keys(settings) as keys:
        return keys.revoke(key_id=key_id, client=client)


def export_audit(
    since: datetime | None,
    out: Path,
    settings: Settings | None = None,
    kind: str = "scores",
) -> int:
    """Write an audit log (from ``since`` on, if given) to CSV at ``out``; return the row count.

    ``kind`` is ``scores``, ``recommendations``, ``decisions`` or ``outcomes``
    (:data:`serving.audit_export.AUDIT_TABLES`); an export of decisions is what
    :func:`data.decisions.validate_decisions` reads back.
    """
    table = AUDIT_TABLES[kind]
    engine = make_engine((settings or get_settings()).resolved_database_url())
    try:
        return _export_audit(engine, since, out, table)
    finally:
        engine.dispose()


def import_outcomes(path: Path, settings: Settings | None = None) -> tuple[str, int]:
    """Import an outcomes file (CSV or Parquet) into the service database, whole or not at all.

    Returns
    -------
    tuple[str, int]
        The import's id (the ``request_id`` of its rows) and the rows recorded.

    Raises
    ------
    DatasetFormatError
        If the file cannot be read.
    SchemaValidationError
        With every violation (row, column, reason); nothing is recorded.
    AuditWriteError
        If the rows could not be committed; none of them then exists.
    """
    engine = make_engine((settings or get_settings()).resolved_database_url())
    try:
        return _import_outcomes(engine, path)
    finally:
        engine.dispose()
