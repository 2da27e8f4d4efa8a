"""The browser harness: what counts as an outside request; skip, or fail, without Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import browser
from tests.support.browser import BrowserPage


def test_outside_requests_are_those_to_any_host_but_loopback() -> None:
    session = BrowserPage(page=None, name="t")
    session.requests += [
        "http://127.0.0.1:5000/static-files/main.js",
        "http://localhost:8000/docs",
        "data:image/png;base64,AAAA",
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui.css",
        "https://fonts.googleapis.com/css?family=Inter",
    ]
    assert session.outside_requests() == session.requests[3:]


def test_without_chromium_the_test_skips_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("DESIST_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium is not installed"):
        browser.require_browser()


def test_without_chromium_ci_fails_instead(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("DESIST_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="DESIST_REQUIRE_BROWSER=1 but Chromium"):
        browser.require_browser()


def test_screenshots_live_under_desist_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DESIST_HOME", str(tmp_path / "home"))
    assert browser.screenshot_dir() == (tmp_path / "home" / "screenshots").resolve()
    assert browser.screenshot_dir().is_dir()
