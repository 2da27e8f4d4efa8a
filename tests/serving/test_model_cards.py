"""``GET /v1/models/{name}/{version}/card``: the card the version's tag links, served and kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from benchmarks.support.registry import MODEL, Store
from models.contract.tags import TAG_MODEL_CARD
from serving.model_cards import ModelCardNotFoundError, ModelCards
from tests.support.serving import Service, make_settings, start_service


@pytest.fixture
def own_service(store: Store, tmp_path: Path) -> Iterator[Service]:
    """A service on a private registry copy, so a test may add versions."""
    yield from start_service(make_settings(store, tmp_path))


def test_the_models_link_opens_the_card(service: Service) -> None:
    (described,) = service.client.get("/v1/models", headers=service.headers()).json()["models"]
    card = service.client.get(described["model_card"], headers=service.headers())
    assert card.status_code == 200
    assert card.headers["content-type"].startswith("text/html")
    assert "<html" in card.text.lower() and "desist-risk" in card.text


def test_the_card_needs_a_key(service: Service) -> None:
    assert service.client.get("/v1/models/desist-risk/1/card").status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/desist-risk/99/card",  # no such version
        "/v1/models/someone-elses-model/1/card",  # not a model this service serves
        "/v1/models/desist-risk/latest/card",
    ],
)
def test_unknown_versions_and_models_are_404(service: Service, path: str) -> None:
    response = service.client.get(path, headers=service.headers())
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_version_without_a_card_is_404(own_service: Service, store: Store) -> None:
    client = store.client()
    version = store.add_version()
    client.delete_model_version_tag(MODEL, version, TAG_MODEL_CARD)
    response = own_service.client.get(
        f"/v1/models/{MODEL}/{version}/card", headers=own_service.headers()
    )
    assert response.status_code == 404


def test_a_card_link_leaving_the_run_is_refused(own_service: Service, store: Store) -> None:
    version = store.add_version(**{TAG_MODEL_CARD: "runs:/abc123/../../etc/passwd"})
    response = own_service.client.get(
        f"/v1/models/{MODEL}/{version}/card", headers=own_service.headers()
    )
    assert response.status_code == 404


def test_a_card_is_fetched_once_then_kept(trained_store: Store) -> None:
    calls = []

    def make_client() -> MlflowClient:
        calls.append(1)
        return trained_store.client()

    cards = ModelCards(make_client, (MODEL,))
    first = cards.get(MODEL, "1")
    assert cards.get(MODEL, "1") is first
    assert len(calls) == 1
    with pytest.raises(ModelCardNotFoundError):
        cards.get("other", "1")
