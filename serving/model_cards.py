"""Model cards served by the service: ``GET /v1/models/{name}/{version}/card``.

The training job logs each version's card as an artifact of its run and
links it with the version's :data:`~models.contract.tags.TAG_MODEL_CARD` tag
(``runs:/RUN_ID/model_card.html``). A case system cannot open that URI, so
the service fetches the artifact from MLflow and answers it as a page. A
version's card never changes once registered, so each is fetched once and
kept (a few, in memory).
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.errors import DesistError
from models.contract.errors import ModelUnavailableError, redact_credentials
from models.contract.tags import TAG_MODEL_CARD
from serving.logs import get_logger

log = get_logger("serving")

_RUN_ARTIFACT = re.compile(r"^runs:/(?P<run_id>[0-9a-zA-Z]+)/(?P<path>[^\x00]+)$")
#: Cards kept in memory: a few versions of two models; a card is tens of kilobytes.
CACHED_CARDS = 16


class ModelCardNotFoundError(DesistError):
    """No card for that model and version.

    A name the service does not serve, no such version, or a version registered without a card.
    """


@dataclass(frozen=True, slots=True)
class ModelCard:
    """A version's card as the service answers it."""

    content: bytes
    media_type: str


def card_url(name: str, version: str) -> str:
    """Return the service's link to a version's card (what ``GET /v1/models`` gives)."""
    return f"/v1/models/{name}/{version}/card"


def _media_type(path: str) -> str:
    if path.endswith((".html", ".htm")):
        return "text/html; charset=utf-8"
    if path.endswith(".md"):
        return "text/markdown; charset=utf-8"
    return "text/plain; charset=utf-8"


class ModelCards:
    """Fetch a version's card from MLflow through its tag, and keep it.

    Parameters
    ----------
    make_client
        Returns a client on the tracking store and registry the service reads.
    names
        The registered models whose cards may be asked for (those the service serves).
    """

    def __init__(self, make_client: Callable[[], MlflowClient], names: tuple[str, ...]) -> None:
        self._make_client = make_client
        self.names = frozenset(names)
        self._cards: OrderedDict[tuple[str, str], ModelCard] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, version: str) -> ModelCard:
        """Return the card of ``name`` version ``version``, fetched once.

        Raises
        ------
        ModelCardNotFoundError
            If the service does not serve ``name``, the version does not exist or has no card.
        ModelUnavailableError
            If MLflow cannot be read just now.
        """
        if name not in self.names or not version.isdigit():
            raise ModelCardNotFoundError(f"no model card for {name} version {version}")
        key = (name, version)
        with self._lock:
            card = self._cards.get(key)
            if card is not None:
                self._cards.move_to_end(key)
                return card
        card = self._fetch(name, version)
        with self._lock:
            self._cards[key] = card
            while len(self._cards) > CACHED_CARDS:
                self._cards.popitem(last=False)
        return card

    def _fetch(self, name: str, version: str) -> ModelCard:
        client = self._make_client()
        missing = ModelCardNotFoundError(f"no model card for {name} version {version}")
        try:
            found = client.get_model_version(name, version)
        except MlflowException as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise missing from err
            raise ModelUnavailableError("the model registry cannot be read just now") from err
        link = _RUN_ARTIFACT.match(found.tags.get(TAG_MODEL_CARD, ""))
        if link is None:
            raise missing
        path = PurePosixPath(link["path"])
        if path.is_absolute() or ".." in path.parts:
            raise missing
        try:
            with tempfile.TemporaryDirectory(prefix="desist-card-") as folder:
                local = client.download_artifacts(link["run_id"], str(path), folder)
                content = Path(local).read_bytes()
        except (MlflowException, OSError) as err:
            log.warning(
                "model card not fetched",
                extra={"model": name, "version": version, "reason": redact_credentials(str(err))},
            )
            raise missing from err
        return ModelCard(content=content, media_type=_media_type(str(path)))
