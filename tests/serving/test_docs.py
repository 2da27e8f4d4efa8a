"""The API docs: served from the package's own files (no CDN), enums, examples, the error body."""

from __future__ import annotations

import re
from typing import Any

import pytest

from data.schema import EXAMPLE_ASSESSMENT, make_assessment_model
from models.bands import BAND_NAMES
from serving.docs import ASSETS, DOCS_ASSETS_URL, REDOC_SCRIPT_URL
from serving.schemas import (
    EXAMPLE_INVALID_REQUEST,
    EXAMPLE_RECOMMENDATIONS,
    EXAMPLE_RISK_SCORES,
    ErrorBody,
    PathwayRecommendationResponse,
    RiskScoreResponse,
)
from serving.settings import Settings
from tests.support.serving import Service

_ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The service's settings with its documents open: these tests read them as a browser would."""
    return settings.model_copy(update={"docs_access": "open"})


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_assets_the_service_serves(service: Service, page: str) -> None:
    response = service.client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "cdn" not in html.lower() and "googleapis" not in html
    assets = _ASSET.findall(html)
    assert assets, "the page loads no script or style at all"
    for url in assets:
        assert url.startswith((f"{DOCS_ASSETS_URL}/", REDOC_SCRIPT_URL)), url
        served = service.client.get(url)
        assert served.status_code == 200 and len(served.content) > 1000, url


def test_no_bundle_served_names_an_outside_address_to_load(service: Service) -> None:
    redoc = service.client.get(REDOC_SCRIPT_URL)
    assert redoc.status_code == 200 and len(redoc.content) > 500_000
    assert b"https://cdn." not in redoc.content
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        served = service.client.get(f"{DOCS_ASSETS_URL}/{name}").content
        assert served == (ASSETS / name).read_bytes()  # the package's own files
        assert b"https://cdn." not in served and b"fonts.googleapis" not in served


def test_swagger_ui_sends_the_schema_to_no_validator(service: Service) -> None:
    assert '"validatorUrl": null' in service.client.get("/docs").text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_may_load_nothing_from_another_origin(service: Service, page: str) -> None:
    policy = service.client.get(page).headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "http" not in policy


def test_band_and_direction_are_enums(service: Service) -> None:
    schemas = service.client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["RiskScore"]["properties"]["risk_band"]["enum"] == list(BAND_NAMES)
    assert schemas["ReasonOut"]["properties"]["direction"]["enum"] == ["raises", "lowers"]


def test_examples_are_valid_and_shown(service: Service) -> None:
    document = service.client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    make_assessment_model().model_validate(EXAMPLE_ASSESSMENT)
    assert schemas["Assessment"]["examples"] == [EXAMPLE_ASSESSMENT]
    for path in ("/v1/risk-scores", "/v1/pathway-recommendations"):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["example"] == {"assessments": [EXAMPLE_ASSESSMENT]}
    for model, example in (
        (RiskScoreResponse, EXAMPLE_RISK_SCORES),
        (PathwayRecommendationResponse, EXAMPLE_RECOMMENDATIONS),
        (ErrorBody, EXAMPLE_INVALID_REQUEST),
    ):
        model.model_validate(example)
        assert schemas[model.__name__]["examples"] == [example]


def test_example_reasons_quote_the_example_assessment() -> None:
    (score,) = EXAMPLE_RISK_SCORES["scores"]
    assert score["subject_ref"] == EXAMPLE_ASSESSMENT["subject_ref"]
    for reason in score["reasons"]:
        assert reason["value"] == EXAMPLE_ASSESSMENT[reason["feature"]]


def test_the_example_error_is_what_the_service_answers(service: Service) -> None:
    bad: list[dict[str, Any]] = [
        {**EXAMPLE_ASSESSMENT, "age": 140},
        {**EXAMPLE_ASSESSMENT, "offence_category": "arson"},
    ]
    body = service.score(bad).json()
    expected = {k: v for k, v in EXAMPLE_INVALID_REQUEST.items() if k != "request_id"}
    assert {k: v for k, v in body.items() if k != "request_id"} == expected


def test_the_page_describes_both_endpoints_and_the_error_body(service: Service) -> None:
    document = service.client.get("/openapi.json").json()
    description = document["info"]["description"]
    routes = ("/v1/risk-scores", "/v1/pathway-recommendations", "/v1/pathway-allocations")
    for words in (*routes, "ErrorBody", "violations"):
        assert words in description
    for path in routes:
        operation = document["paths"][path]["post"]
        assert operation["summary"] and operation["description"]
        refused = operation["responses"]["422"]["content"]["application/json"]["schema"]
        assert refused["$ref"].endswith("/ErrorBody")
