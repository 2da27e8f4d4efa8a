"""The contract's errors: credentials cut from messages, kinds of load error, tag errors."""

from __future__ import annotations

import pytest

from data.errors import DesistError
from models.contract.errors import (
    ModelIntegrityError,
    ModelLoadError,
    ModelUnavailableError,
    RegistryError,
    UntrustedArtifactError,
    VersionTagError,
    redact_credentials,
)
from models.contract.tags import TAG_FEATURES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cannot reach https://alice:s3cret@mlflow.example/api",
            "cannot reach https://alice:***@mlflow.example/api",
        ),
        (
            "a postgresql://u:p@db:5432/x and s3://k:v@bucket/y",
            "a postgresql://u:***@db:5432/x and s3://k:***@bucket/y",
        ),
        ("no credentials in https://mlflow.example:5000/x", None),
        ("sqlite:///home/desist/mlflow.db", None),
    ],
)
def test_passwords_in_urls_are_redacted(text: str, expected: str | None) -> None:
    assert redact_credentials(text) == (text if expected is None else expected)


def test_integrity_error_names_both_digests_and_refuses() -> None:
    error = ModelIntegrityError("risk", "3", expected="abc", found="def")
    assert (error.expected, error.found) == ("abc", "def")
    assert str(error) == (
        "risk version 3: artifact digest def does not match the registered abc; refusing to load"
    )


def test_a_tag_error_names_its_tag() -> None:
    error = VersionTagError(TAG_FEATURES, "missing")
    assert error.tag == TAG_FEATURES and str(error) == f"tag {TAG_FEATURES}: missing"


def test_the_error_kinds_nest_as_handlers_expect() -> None:
    assert issubclass(ModelIntegrityError, ModelLoadError)
    assert issubclass(UntrustedArtifactError, ModelLoadError)
    assert issubclass(VersionTagError, RegistryError)
    for kind in (ModelLoadError, ModelUnavailableError, RegistryError):
        assert issubclass(kind, DesistError)
