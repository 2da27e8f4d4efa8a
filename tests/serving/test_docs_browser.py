"""``/docs`` and ``/redoc`` of a real ``desist serve`` in headless Chromium: they render offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.support.live import LiveService
from serving.settings import Settings
from tests.support import browser
from tests.support.browser import BrowserPage

# The harness's fixture, made visible to this module's tests.
browser_page = browser.browser_page

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The service's settings with its documents open: these tests read them as a browser would."""
    return settings.model_copy(update={"docs_access": "open"})


def test_docs_and_redoc_render_the_operations_with_no_outside_request(
    settings: Settings, tmp_path: Path, browser_page: BrowserPage
) -> None:
    with LiveService(settings, tmp_path / "service.log") as live:
        live.start()
        page = browser_page.page
        page.goto(f"{live.url}/docs")
        page.locator(".opblock").first.wait_for(state="visible")
        text = page.inner_text("body")
        for operation in ("/v1/risk-scores", "/v1/pathway-recommendations", "/v1/models"):
            assert operation in text
        # The example request and the band enum are on the page, not only in the JSON.
        page.locator("#operations-scores-score_assessments_v1_risk_scores_post").click()
        page.get_by_text("case-2024-00417", exact=False).first.wait_for(state="visible")
        browser_page.screenshot("swagger-ui")

        page.goto(f"{live.url}/redoc")
        page.get_by_role("heading", name="Score a batch of assessments").first.wait_for(
            state="visible"
        )
        assert "ErrorBody" in page.inner_text("body")
        browser_page.screenshot("redoc")
    assert browser_page.requests, "the pages made no request at all: nothing was loaded"
    assert browser_page.outside_requests() == []
