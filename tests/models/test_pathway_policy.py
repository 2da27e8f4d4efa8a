from __future__ import annotations

import numpy as np

from models.pathway_policy import NO_PROGRAMME, served_programmes

EFFECT = np.array(
    [
        [0.05, 0.02, 0.00],  # confident in 0 (the default)
        [0.03, 0.06, 0.00],  # personal pick 1 beats the default by 0.03
        [0.03, 0.035, 0.0],  # personal pick 1 beats it by 0.005 only
        [0.03, 0.01, 0.02],  # nothing confident: default
        [0.00, 0.04, 0.00],  # default not open: personal pick
        [0.00, 0.00, 0.00],  # nothing confident, default not open
    ]
)
CONFIDENT = np.array(
    [
        [True, False, False],
        [True, True, False],
        [False, True, False],
        [False, False, False],
        [False, True, False],
        [False, False, False],
    ]
)
OPEN = np.ones_like(CONFIDENT)
OPEN[4:, 0] = False


def test_personal_picks_replace_the_default_only_by_the_margin() -> None:
    choice = served_programmes(EFFECT, CONFIDENT, OPEN, default=0, margin=0.01)
    assert choice.tolist() == [0, 1, 0, 0, 1, NO_PROGRAMME]


def test_zero_margin_follows_the_largest_confident_estimate() -> None:
    choice = served_programmes(EFFECT, CONFIDENT, OPEN, default=0, margin=0.0)
    assert choice.tolist() == [0, 1, 1, 0, 1, NO_PROGRAMME]


def test_infinite_margin_is_the_best_single_programme_where_open() -> None:
    choice = served_programmes(EFFECT, CONFIDENT, OPEN, default=0, margin=float("inf"))
    assert choice.tolist() == [0, 0, 0, 0, 1, NO_PROGRAMME]


def test_without_a_default_only_confident_picks_are_offered() -> None:
    choice = served_programmes(EFFECT, CONFIDENT, OPEN, default=NO_PROGRAMME, margin=0.01)
    assert choice.tolist() == [0, 1, 1, NO_PROGRAMME, 1, NO_PROGRAMME]
