"""What a reviewer sees in a real browser: the registry's version page and the served model card.

One real ``mlflow server`` (SQLite in a temporary folder, loopback, a free
port) for the module; a small risk model trained, registered and promoted
through it; then headless Debian Chromium opens (a) the version's page in the
MLflow UI, which must show the description with the gate decision, and (b)
the version's model card served by a real ``desist serve``, which must show
the fairness section with its figures. Screenshots go to
``$DESIST_HOME/screenshots`` (never committed). The waits are for texts, with
generous limits: the MLflow UI is a single-page app that can take a while to
load on a busy machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from benchmarks.support.configs import small_config
from benchmarks.support.live import LiveService
from models.risk import ScorecardSettings
from pipeline.config import GateConfig
from pipeline.registry import promote
from pipeline.tracking import Tracker
from pipeline.train_risk import TrainResult, train
from serving.commands import create_key
from serving.settings import Settings
from tests.support import browser
from tests.support.browser import BrowserPage

pytestmark = pytest.mark.browser

browser_page = browser.browser_page  # the fixture, visible to this module

#: The MLflow UI is a single-page app: its first load on a loaded machine can be slow.
SPA_SECONDS = 90
MODEL = "desist-risk"


@dataclass(frozen=True)
class Registered:
    """A model version trained, registered and promoted through a real MLflow server."""

    server: browser.MlflowServer
    result: TrainResult
    folder: Path


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registered]:
    browser.require_browser()
    folder = tmp_path_factory.mktemp("registry-browser")
    with browser.running_mlflow_server(folder) as server:
        tracker = Tracker(tracking_uri=server.tracking_uri)
        result = train(small_config(models=(ScorecardSettings(),)), tracker=tracker)
        # The service serves the champion: promoted through the gates (the AUC gate loose,
        # there being no champion to compare with on so small a cohort).
        decision = promote(
            tracker, MODEL, result.version, GateConfig(auc_tolerance=1.0), (), actor="browser-test"
        )
        assert decision.promoted or decision.forced, decision
        yield Registered(server, result, folder)


def test_the_version_page_shows_its_description_with_the_gate_decision(
    registered: Registered, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    version = registered.result.version
    page.goto(f"{registered.server.url}/#/models/{MODEL}/versions/{version}")
    description = page.get_by_text(re.compile("Calibration gate on the test split"))
    description.first.wait_for(timeout=SPA_SECONDS * 1000)
    text = page.inner_text("body")
    assert "Test ROC AUC" in text
    assert re.search(r"Calibration gate on the test split: (passed|FAILED)", text)
    assert re.search(r"Promotion .* by browser-test: (promoted|forced)", text)
    browser_page.screenshot("version-page")


def test_the_served_model_card_shows_the_fairness_section_with_figures(
    registered: Registered, browser_page: BrowserPage
) -> None:
    home = registered.folder / "service-home"
    settings = Settings(
        home=home,
        tracking_uri=registered.server.tracking_uri,
        database_url=f"sqlite:///{registered.folder / 'service.db'}",
        rate_limit_per_second=0,
        unverified_per_second=0,
    )
    key = create_key("browser-test", "score", settings=settings)
    with LiveService(settings, registered.folder / "service.log") as live:
        live.start()
        link = f"/v1/models/{MODEL}/{registered.result.version}/card"
        listed = httpx.get(f"{live.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert link in listed.text  # the link /v1/models gives is the one opened here
        page = browser_page.page
        page.set_extra_http_headers({"Authorization": f"Bearer {key}"})
        response = page.goto(f"{live.url}{link}")
        assert response is not None and response.status == 200
        page.get_by_role("heading", name="Fairness").wait_for(timeout=30_000)
        title = page.get_by_role("heading", level=1).inner_text()
        assert title == f"Model card: {MODEL} (version {registered.result.version})"
        fairness = page.inner_text("body").split("Fairness", 1)[1]
        assert re.search(
            r"False positive rate ratio black / white, desist at p >= 0\.5: "
            r"\d+\.\d\d \(95% CI \d+\.\d\d to \d+\.\d\d\)",
            fairness,
        )
        assert re.search(
            r"Calibration gap by ethnicity, desist \(.*?\): .*\bwhite [+-]\d", fairness
        )
        assert "too few to judge (n = " in page.inner_text("body")
        browser_page.screenshot("model-card")
        assert browser_page.outside_requests() == []
