"""The JSON body of a batch of scores, written in one pass over flat lists.

A 1,000-assessment answer was 4,000 dictionaries (a score and three reasons
per assessment) handed to the JSON encoder, then freed: a fifth of the
request. Here every value of one kind (references, probabilities,
contributions, the values sent) is encoded by pydantic-core's encoder in one
call, cut into its items, and the items are put into one format string:
the same bytes as ``to_json`` of those dictionaries (tested), without them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_core import to_json

from data.schema import ASSESSMENT_FIELDS

#: The service's category values have no character a JSON list of them could be cut at.
_PLAIN_CATEGORIES = all(
    '"' not in value and "," not in value and "\\" not in value
    for spec in ASSESSMENT_FIELDS
    for value in spec.categories
)

_REASON = '{"feature":"%s","value":%s,"contribution":%s,"direction":"%s"}'


def _items(values: Sequence[Any]) -> list[str]:
    """Return the JSON of each of ``values`` (numbers, or strings with no comma or quote)."""
    return to_json(values).decode()[1:-1].split(",")


def _texts(values: Sequence[str]) -> list[str]:
    """Return the JSON string of each of ``values``, without its quotes.

    Cut at ``","``: inside a JSON string every quote is escaped, so that
    sequence only ever stands between two strings.
    """
    return to_json(values).decode()[2:-2].split('","')


def scores_body(
    head: dict[str, str],
    refs: Sequence[str],
    picks: tuple[list[float], list[str], list[list[int]], list[list[float]]],
    features: Sequence[str],
    columns: Mapping[str, Sequence[Any]],
) -> bytes | None:
    """Return ``to_json({**head, "scores": scores})`` of a batch's scores; ``None`` if it cannot.

    Parameters
    ----------
    head
        The answer's fields before its scores (model name and version, request id).
    refs
        Each assessment's ``subject_ref``.
    picks
        Probabilities, bands, and each row's reasons as columns of ``features``
        and contributions (:meth:`serving.scorer.Scorer.picks`).
    features
        The model's features.
    columns
        Each field's values as validated, in row order.

    Returns
    -------
    bytes or None
        ``None`` when a row has no reasons or one among its picks was not
        assessed (a reason it must leave out), or a category value could not
        be cut apart: :func:`serving.scorer.scores_from_picks` then builds the scores.
    """
    probabilities, bands, order, picked = picks
    width = len(order[0]) if order else 0
    if width == 0 or not _PLAIN_CATEGORIES:
        return None
    names = [features[j] for row in order for j in row]
    sent = [columns[name][i // width] for i, name in enumerate(names)]
    if None in sent:
        return None
    amounts = [c for row in picked for c in row]
    directions = ["raises" if c > 0 else "lowers" for c in amounts]
    stride = 3 + 4 * width
    cells: list[str] = [""] * (len(refs) * stride)
    cells[0::stride] = _texts(refs)
    cells[1::stride] = _items(probabilities)
    cells[2::stride] = bands
    for part, items in enumerate((names, _items(sent), _items(amounts), directions)):
        for k in range(width):
            cells[3 + 4 * k + part :: stride] = items[k::width]
    row = (
        '{"subject_ref":"%s","risk_probability":%s,"risk_band":"%s","reasons":['
        + ",".join([_REASON] * width)
        + "]}"
    )
    # The cells put between the row's fixed parts by one join (half the cost of formatting
    # every row's template with them): a row's last part, a comma and the next row's first.
    parts = row.split("%s")
    pieces: list[str] = [""] * (2 * len(cells) + 1)
    pieces[1::2] = cells
    pieces[2::2] = [*parts[1:-1], parts[-1] + "," + parts[0]] * len(refs)
    pieces[0] = to_json(head).decode()[:-1] + ',"scores":[' + parts[0]
    pieces[-1] = parts[-1] + "]}"
    return "".join(pieces).encode()
