"""Headless Chromium for tests that check what a reviewer sees, and a real MLflow server to show.

The browser is Debian's ``chromium`` package at ``/usr/bin/chromium``, driven
by Playwright for Python; no browser is ever downloaded (never run
``playwright install``). Where Chromium or Playwright is absent the tests skip
with the reason, except under ``DESIST_REQUIRE_BROWSER=1`` (CI installs the
package), where they fail instead.

Every request the page makes is recorded, so a test can assert that a page
renders on a closed network (:meth:`BrowserPage.outside_requests`).
Screenshots go to ``$DESIST_HOME/screenshots`` (``./.desist`` by default,
never committed).

Use in a test module::

    from tests.support import browser

    browser_page = browser.browser_page  # the fixtures, visible to this module
    mlflow_server = browser.mlflow_server

    @pytest.mark.browser
    def test_page(browser_page, mlflow_server): ...
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from pipeline.tracking import desist_home

CHROMIUM = Path("/usr/bin/chromium")
#: No sandbox (tests run as root in containers), no GPU, and nothing Chromium does on its own
#: behind the page's back (updates, sync, first-run pages), so every request is the page's.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: Hosts a page may talk to: the loopback servers the tests start.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# Schemes that never leave the machine.
_LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome", "chrome-extension", "devtools"})
_SERVER_START_SECONDS = 90.0


def browser_problem() -> str | None:
    """Return why a browser test cannot run here, or None when it can."""
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


def require_browser() -> None:
    """Skip the calling test when no browser can run, or fail under ``DESIST_REQUIRE_BROWSER=1``."""
    problem = browser_problem()
    if problem is None:
        return
    if os.environ.get("DESIST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"DESIST_REQUIRE_BROWSER=1 but {problem}")
    pytest.skip(problem)


def screenshot_dir() -> Path:
    """Return ``$DESIST_HOME/screenshots``, created."""
    path = desist_home() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class BrowserPage:
    """A Playwright page in a fresh Chromium profile, with every request it made.

    Attributes
    ----------
    page
        The ``playwright.sync_api.Page``.
    requests
        URLs of every request, in order (documents, scripts, fonts, XHR).
    name
        Prefix of the screenshots (the test's name).
    """

    page: Any
    name: str
    requests: list[str] = field(default_factory=list)

    def outside_requests(self, allowed: frozenset[str] = LOOPBACK) -> list[str]:
        """Return the requests to any host outside ``allowed`` (a CDN, fonts, telemetry)."""
        outside = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in _LOCAL_SCHEMES:
                continue
            if (parts.hostname or "") not in allowed:
                outside.append(url)
        return outside

    def screenshot(self, label: str) -> Path:
        """Save a full-page screenshot under :func:`screenshot_dir` and return its path."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.name}-{label}")
        path = screenshot_dir() / f"{safe}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def browser_page(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrowserPage]:
    """Headless Debian Chromium with a fresh user-data-dir; a screenshot is kept on the way out."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_ARGS),
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(30_000)
            session = BrowserPage(page=page, name=request.node.name)
            context.on("request", lambda r: session.requests.append(r.url))
            yield session
            with contextlib.suppress(Exception):  # the test's verdict matters, not this picture
                session.screenshot("final")
        finally:
            context.close()


def free_port() -> int:
    """Return a loopback port nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: its URL and the store its client writes to."""

    url: str
    tracking_uri: str


@contextlib.contextmanager
def running_mlflow_server(folder: Path) -> Iterator[MlflowServer]:
    """Run a real ``mlflow server`` on loopback for the block, its store and files in ``folder``.

    A module can share one server (its start and the UI's first load are the
    slow part) by calling this from a module-scoped fixture.
    """
    mlflow = Path(sys.executable).with_name("mlflow")
    executable = str(mlflow) if mlflow.exists() else shutil.which("mlflow")
    if executable is None:
        pytest.skip("the mlflow command is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "mlflow-server.log").open("wb")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [
        executable,
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        _wait_for(url, process, folder / "mlflow-server.log")
        yield MlflowServer(url=url, tracking_uri=url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=5)
        log.close()


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on loopback, SQLite store and artifacts in ``tmp_path``."""
    with running_mlflow_server(tmp_path) as server:
        yield server


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"mlflow server not up in {_SERVER_START_SECONDS:.0f} s at {url}")
