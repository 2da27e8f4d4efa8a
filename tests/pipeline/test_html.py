from __future__ import annotations

import base64

from matplotlib.figure import Figure

from pipeline.html import html_list, html_page, html_table, inline_png


def test_table_escapes_every_cell_and_header() -> None:
    table = html_table(["a<b", "c"], [["<script>", "x & y"], ["1", '"q"']])
    assert table.startswith("<table><thead><tr><th>a&lt;b</th><th>c</th></tr></thead>")
    assert "<td>&lt;script&gt;</td><td>x &amp; y</td>" in table
    assert "<td>&quot;q&quot;</td>" in table
    assert table.count("<tr>") == 3 and "<script>" not in table


def test_list_escapes_its_items() -> None:
    assert html_list(["a", "<b>"]) == "<ul><li>a</li><li>&lt;b&gt;</li></ul>"
    assert html_list([]) == "<ul></ul>"


def test_page_has_the_escaped_title_inline_css_and_the_body_in_order() -> None:
    page = html_page("Card <1>", "p{color:red}", ["<p>one</p>", "<p>two</p>"])
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">')
    assert "<title>Card &lt;1&gt;</title>" in page and "<h1>Card &lt;1&gt;</h1>" in page
    assert "<style>p{color:red}</style>" in page
    assert page.index("<p>one</p>") < page.index("<p>two</p>") < page.index("</body>")
    assert page.endswith("</body>\n</html>\n")


def test_a_figure_is_embedded_as_a_png_with_escaped_alt_text() -> None:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    img = inline_png(fig, 'rates "by" group')
    assert img.startswith('<img alt="rates &quot;by&quot; group" src="data:image/png;base64,')
    data = img.split("base64,", 1)[1].removesuffix('">')
    assert base64.b64decode(data).startswith(b"\x89PNG")


def test_a_png_already_rendered_is_embedded_as_it_is() -> None:
    png = b"\x89PNG\r\n\x1a\n drawn once"
    img = inline_png(png, "rates")
    assert img == f'<img alt="rates" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
