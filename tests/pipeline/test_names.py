from __future__ import annotations

import pytest

from pipeline.names import slug


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("very high", "very_high"),
        ("COMPAS decile", "compas_decile"),
        ("African-American / Black", "african_american_black"),
        ("  not recorded  ", "not_recorded"),
        ("---", "blank"),
        ("", "blank"),
    ],
)
def test_slug_keeps_letters_and_digits_and_never_ends_empty(text: str, expected: str) -> None:
    assert slug(text) == expected
