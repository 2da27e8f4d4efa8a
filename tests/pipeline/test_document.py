from __future__ import annotations

import math

import pytest

from pipeline import document
from pipeline.document import Bullets, Section, Table

SECTIONS = [
    Section("First", ["A paragraph.", Bullets(["one", "two\nlines"])]),
    Section("Second <x>", [Table(("k", "v"), [("a|b", "1"), ("<c>", "2")])]),
]


def test_markdown_has_headings_paragraphs_bullets_and_tables() -> None:
    text = document.markdown_document("Title", SECTIONS)
    assert text.splitlines()[:6] == ["# Title", "", "## First", "", "A paragraph.", ""]
    assert "- one\n- two lines\n" in text
    assert "| k | v |\n|---|---|\n| a\\|b | 1 |\n| <c> | 2 |" in text


def test_html_says_the_same_with_everything_escaped() -> None:
    page = document.html_document("Title & co", SECTIONS, "body{}")
    assert "<h1>Title &amp; co</h1>" in page and "<style>body{}</style>" in page
    assert "<h2>First</h2>\n<p>A paragraph.</p>\n<ul><li>one</li><li>two\nlines</li></ul>" in page
    assert "<h2>Second &lt;x&gt;</h2>" in page and "<td>&lt;c&gt;</td>" in page
    assert page.index("<h2>First</h2>") < page.index("<h2>Second")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (document.number(0.12345), "0.123"),
        (document.number(2.0, 1), "2.0"),
        (document.number(math.nan), "n/a"),
        (document.percent(0.1234), "12.3%"),
        (document.percent(math.nan), "n/a"),
        (document.count(12345.0), "12,345"),
        (document.count(math.nan), "n/a"),
        (document.with_interval(0.7, 0.65, 0.75), "0.700 (0.650 to 0.750)"),
        (document.with_interval(0.7, math.nan, 0.75), "0.700"),
        (document.with_interval(math.nan, 0.65, 0.75), "n/a"),
        (document.points_with_interval(0.021, -0.004, 0.05), "+2.1 (-0.4 to +5.0)"),
        (document.points_with_interval(-0.021, math.nan, math.nan), "-2.1"),
        (document.points_with_interval(math.nan, 0.0, 0.1), "n/a"),
    ],
)
def test_numbers_read_the_same_way_in_every_table(text: str, expected: str) -> None:
    assert text == expected
