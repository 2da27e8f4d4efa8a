"""Errors of the train-to-serve contract, and the one place credentials are cut from messages.

A version that cannot be resolved, downloaded, verified or deserialised
raises a :class:`ModelLoadError` (or one of its kinds); a registry
operation that cannot be done raises a :class:`RegistryError`. The service
maps them to HTTP answers, the CLI prints them.
"""

from __future__ import annotations

import re

from data.errors import DesistError

#: ``scheme://user:password@host``: the password part of a URL an error may quote.
_CREDENTIALS = re.compile(r"(://[^:/@\s]+):[^@\s]+@")


def redact_credentials(text: str) -> str:
    """Return ``text`` with the passwords of any URLs in it replaced by ``***``."""
    return _CREDENTIALS.sub(r"\1:***@", text)


class RegistryError(DesistError):
    """A registry operation cannot be done (unknown version, missing figures)."""


class VersionTagError(RegistryError):
    """A registered version's tags are missing one the contract needs, or hold a bad value.

    ``tag`` names the tag at fault.
    """

    def __init__(self, tag: str, reason: str) -> None:
        self.tag = tag
        super().__init__(f"tag {tag}: {reason}")


class ModelUnavailableError(DesistError):
    """No model is loaded to serve (still loading, or the load failed)."""


class ModelLoadError(DesistError):
    """A registered model cannot be resolved, downloaded or deserialised."""


class ModelIntegrityError(ModelLoadError):
    """A model's files do not match the digest recorded at registration."""

    def __init__(self, name: str, version: str, expected: str, found: str) -> None:
        self.expected = expected
        self.found = found
        super().__init__(
            f"{name} version {version}: artifact digest {found} does not match "
            f"the registered {expected}; refusing to load"
        )


class UntrustedArtifactError(ModelLoadError):
    """A model's files would be deserialised in an unsafe way (pickle, untrusted types)."""
