from __future__ import annotations

import numpy as np
import pytest

from data.schema import PROGRAMMES
from models.pathway_estimates import PathwayEstimates
from models.pathway_policy import (
    MARGINS,
    NO_PROGRAMME,
    best_single_programme,
    choose,
    person_figures,
    select_policy,
    served_choice,
)


def _estimates(
    effect: list[list[float]],
    recommended: list[list[bool]],
    open_to: list[list[bool]] | None = None,
) -> PathwayEstimates:
    effect_a = np.array(effect)
    shape = effect_a.shape
    open_a = np.ones(shape, dtype=bool) if open_to is None else np.array(open_to)
    return PathwayEstimates(
        programmes=tuple(f"p{j}" for j in range(shape[1])),
        effect=effect_a,
        interval_low=effect_a - 0.01,
        interval_high=effect_a + 0.01,
        propensity=np.full(shape, 0.5),
        in_overlap=open_a,
        eligible=np.ones(shape, dtype=bool),
        recommended=np.array(recommended) & open_a,
    )


def test_a_confident_top_pick_is_served_and_an_unconfident_one_falls_back() -> None:
    estimates = _estimates(
        [[0.01, 0.05, 0.02], [0.01, 0.05, 0.02], [0.03, 0.01, 0.0]],
        [[False, True, False], [False, False, True], [False, False, False]],
    )
    choice = served_choice(estimates, default=0)
    # Person 1's best confident programme (2) is not their top estimate (1):
    # they get the default, not a lesser personal pick.
    assert choice.programme.tolist() == [1, 0, 0]
    assert choice.confident.tolist() == [True, False, False]


def test_the_margin_keeps_the_default_unless_the_pick_beats_it() -> None:
    estimates = _estimates([[0.04, 0.05], [0.01, 0.05]], [[False, True], [False, True]])
    assert served_choice(estimates, default=0, margin=0.02).programme.tolist() == [0, 1]


def test_no_default_and_default_outside_the_evidence_give_nothing() -> None:
    estimates = _estimates(
        [[0.04, 0.05], [0.04, 0.05]],
        [[False, False], [False, True]],
        open_to=[[False, True], [True, True]],
    )
    assert served_choice(estimates, default=0).programme.tolist() == [NO_PROGRAMME, 1]
    assert served_choice(estimates, default=NO_PROGRAMME).programme.tolist() == [NO_PROGRAMME, 1]
    assert not served_choice(estimates, default=0).offered[0]


def test_person_figures_contain_the_estimate_and_read_as_risks() -> None:
    estimates = _estimates([[0.02, 0.05], [0.10, 0.0]], [[False, True], [True, False]])
    figures = person_figures(estimates, np.array([0.5, 0.06]))
    assert ((figures.low <= estimates.effect) & (estimates.effect <= figures.high)).all()
    assert np.allclose(figures.high - figures.low, 0.02)
    assert np.allclose(figures.risk_with[0], [0.48, 0.45])
    assert figures.risk_with[1, 0] == 0.0  # never below zero


def test_selection_keeps_the_default_when_personal_picks_score_worse() -> None:
    effect = np.array([[0.02, 0.05], [0.02, 0.06], [0.03, 0.01]])
    open_to = np.ones_like(effect, dtype=bool)
    recommended = np.array([[False, True], [False, False], [False, False]])
    # The pseudo-outcomes say programme 1 does nothing: offer 0 to everyone.
    pseudo = np.array([[0.03, -0.01], [0.02, 0.0], [0.04, 0.0]])
    gate, margin, values = select_policy(effect, open_to, recommended, pseudo, default=0)
    assert values[f"{'gate' if gate else 'no_gate'}/{margin}"] == pytest.approx(0.03)
    programme, _ = choose(effect, open_to, recommended, 0, margin, gate)
    assert programme.tolist() == [0, 0, 0]
    assert len(values) == 2 * len(MARGINS)


def test_selection_drops_the_gate_when_unconfident_picks_score_better() -> None:
    effect = np.array([[0.02, 0.05], [0.02, 0.06], [0.03, 0.01]])
    open_to = np.ones_like(effect, dtype=bool)
    recommended = np.zeros_like(open_to)
    pseudo = np.array([[0.0, 0.05], [0.0, 0.06], [0.03, 0.0]])
    gate, margin, _ = select_policy(effect, open_to, recommended, pseudo, default=0)
    assert not gate and margin < 0.03
    programme, confident = choose(effect, open_to, recommended, 0, margin, gate)
    assert programme.tolist() == [1, 1, 0] and not confident.any()


def test_without_a_default_the_gate_is_kept() -> None:
    effect = np.array([[0.02, 0.05], [0.02, 0.06]])
    open_to = np.ones_like(effect, dtype=bool)
    recommended = np.zeros_like(open_to)
    pseudo = np.array([[0.0, 0.05], [0.0, 0.06]])  # noise that favours ungated picks
    gate, _, values = select_policy(effect, open_to, recommended, pseudo, default=NO_PROGRAMME)
    assert gate and all(name.startswith("gate/") for name in values)


def test_the_best_single_programme_is_the_largest_value_whose_floor_clears_zero() -> None:
    rng = np.random.default_rng(4)
    n, k = 4_000, len(PROGRAMMES)
    means = np.linspace(-0.02, 0.03, k)
    pseudo = means + rng.normal(0.0, 0.3, size=(n, k))
    open_to = np.ones((n, k), dtype=bool)
    values, floors, default = best_single_programme(pseudo, open_to)
    assert default == int(np.argmax([values[p] for p in PROGRAMMES]))
    assert all(floors[p] < values[p] for p in PROGRAMMES)
    # Closed to most people, the best one is worth less per person of the cohort.
    open_to[: n * 3 // 4, default] = False
    values_closed, _, _ = best_single_programme(pseudo, open_to)
    assert values_closed[PROGRAMMES[default]] == pytest.approx(
        pseudo[n * 3 // 4 :, default].sum() / n
    )
    # Pure noise: no programme's floor clears zero, so there is no default.
    noise = rng.normal(0.0, 1.0, size=(200, k)) - 0.05
    _, _, none = best_single_programme(noise, np.ones((200, k), dtype=bool))
    assert none == NO_PROGRAMME


@pytest.mark.parametrize("gain", ["within", "clear"])
def test_selection_switches_only_when_the_gain_beats_its_own_standard_error(gain: str) -> None:
    n = 2_000
    effect = np.column_stack([np.full(n, 0.02), np.random.default_rng(8).uniform(0.0, 0.04, n)])
    open_to = np.ones_like(effect, dtype=bool)
    recommended = np.zeros_like(open_to)
    # Within: programme 1 is worth 0.005 more than the default on average, under noise of
    # sd 1, inside one standard error (about 0.016); clear: 0.48 more.
    noise = np.where(np.arange(n) % 2 == 0, 1.0, -0.99) + (0.48 if gain == "clear" else 0.0)
    pseudo = np.column_stack([np.full(n, 0.02), 0.02 + noise])
    gate, margin, values = select_policy(effect, open_to, recommended, pseudo, default=0)
    assert max(values.values()) > values["gate/inf"]  # the best-scoring rule is a switch
    if gain == "within":
        assert (gate, margin) == (True, float("inf"))  # ...but not by more than its own error
    else:
        assert not gate and margin < float("inf")


def test_a_gain_of_little_more_than_one_standard_error_is_not_enough_to_switch() -> None:
    # Programme 1 beats the default by about 1.3 standard errors of the gain: a
    # one-sided p of about 0.1, which one standard error would have let through.
    rng = np.random.default_rng(9)
    n = 4_000
    effect = np.column_stack([np.full(n, 0.02), np.full(n, 0.05)])
    open_to = np.ones_like(effect, dtype=bool)
    noise = rng.normal(0.0, 1.0, n)
    noise = (noise - noise.mean()) / noise.std(ddof=1)  # exactly sd 1, mean 0
    pseudo = np.column_stack([np.full(n, 0.02), 0.02 + noise + 1.3 / np.sqrt(n)])
    gate, margin, _ = select_policy(effect, open_to, np.zeros_like(open_to), pseudo, default=0)
    assert (gate, margin) == (True, float("inf"))
