"""What a reviewer sees of a registered version in MLflow's own UI, in a real browser."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests.support import browser
from tests.support.browser import BrowserPage, MlflowServer

# The harness's fixtures, made visible to this module's tests.
browser_page = browser.browser_page
mlflow_server = browser.mlflow_server

pytestmark = pytest.mark.browser

DESCRIPTION = (
    "Broward benchmark model, trained on 4,616 people. Test AUC 0.783. "
    "Calibration gate passed: every test within its noise band."
)


def test_registered_version_page_shows_its_description(
    mlflow_server: MlflowServer, browser_page: BrowserPage
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.tracking_uri)
    experiment = client.create_experiment("browser-check")
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("desist-risk-browser", description="A model for the UI test.")
    version = client.create_model_version(
        "desist-risk-browser", source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    client.update_model_version("desist-risk-browser", version.version, description=DESCRIPTION)

    page = browser_page.page
    page.goto(f"{mlflow_server.url}/#/models/desist-risk-browser/versions/{version.version}")
    page.get_by_text("Calibration gate passed", exact=False).first.wait_for(
        state="visible", timeout=90_000
    )
    assert DESCRIPTION in page.inner_text("body")
    browser_page.screenshot("version-page")
    assert browser_page.requests, "the page made no request at all: nothing was loaded"
    assert browser_page.outside_requests() == []
