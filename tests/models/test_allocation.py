from __future__ import annotations

import itertools

import numpy as np
import pytest

from models.allocation import NO_PLACE, allocate, allocation_shares, highest_need_first


def _brute_force(value: np.ndarray, allowed: np.ndarray, places: np.ndarray) -> float:
    n, k = value.shape
    best = 0.0
    for choice in itertools.product(range(-1, k), repeat=n):
        counts = np.bincount([c for c in choice if c >= 0], minlength=k)
        if (counts > places).any():
            continue
        if any(c >= 0 and not allowed[i, c] for i, c in enumerate(choice)):
            continue
        best = max(best, sum(value[i, c] for i, c in enumerate(choice) if c >= 0))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_allocation_is_optimal_and_respects_places_and_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    value = rng.normal(0.03, 0.03, (6, 3))
    allowed = rng.random((6, 3)) < 0.7
    places = np.array([2, 1, 2])
    result = allocate(value, allowed, places)
    chosen = result.programme
    assert np.bincount(chosen[chosen >= 0], minlength=3).tolist() == result.filled.tolist()
    assert (result.filled <= places).all()
    for person, programme in enumerate(chosen):
        if programme != NO_PLACE:
            assert allowed[person, programme] and value[person, programme] > 0
    assert result.total == pytest.approx(_brute_force(value, allowed, places))


def test_allocation_with_nothing_allowed_places_nobody() -> None:
    result = allocate(np.ones((3, 2)), np.zeros((3, 2), dtype=bool), np.array([1, 1]))
    assert (result.programme == NO_PLACE).all() and result.total == 0


def test_highest_need_first_serves_the_neediest_until_places_run_out() -> None:
    need = np.array([[1, 0], [3, 2], [2, 2], [0, 0]])
    allowed = np.ones(need.shape, dtype=bool)
    out = highest_need_first(need, allowed, np.array([1, 1]))
    # Person 1 (need 3) takes programme 0; person 2 (need 2) finds it full
    # and takes programme 1; person 0 finds both full; person 3 has no need.
    assert out.tolist() == [NO_PLACE, 0, 1, NO_PLACE]


def test_shares_by_group_add_up() -> None:
    shares = allocation_shares(np.array([0, -1, 1, 1]), np.array(["a", "a", "b", "b"]))
    assert shares["a"]["allocated_share"] + shares["b"]["allocated_share"] == pytest.approx(1)
    assert shares["b"]["allocated_rate"] == 1.0


def test_priority_pairs_are_placed_first_and_the_places_left_are_filled() -> None:
    value = np.array([[0.01, 0.0], [0.05, 0.02], [0.04, 0.03]])
    allowed = np.ones_like(value, dtype=bool)
    priority = np.array([[True, False], [False, False], [False, False]])
    plain = allocate(value, allowed, np.array([1, 1]))
    assert plain.programme.tolist() == [NO_PLACE, 0, 1]
    first = allocate(value, allowed, np.array([1, 1]), priority=priority)
    # Person 0 holds programme 0's place; programme 1's goes to the best left.
    assert first.programme.tolist() == [0, NO_PLACE, 1]
    assert first.filled.tolist() == [1, 1]
    assert first.total == pytest.approx(0.04)


def test_a_cohort_is_allocated_confident_pairs_first_within_the_places() -> None:
    from data.schema import DEFAULT_FEATURES, PROGRAMMES, TARGET_FIELD
    from data.synthetic import SynthConfig, generate_cohort
    from models.allocation import allocate_cohort, allocate_estimates
    from models.pathways import PathwayEffectModel

    cohort, _ = generate_cohort(SynthConfig(rows=6000, seed=8))
    model = PathwayEffectModel(DEFAULT_FEATURES, max_iter=30).fit(
        cohort, cohort[TARGET_FIELD].to_numpy(dtype=int)
    )
    people = cohort.iloc[:400]
    places = np.full(len(PROGRAMMES), 30)
    result = allocate_cohort(model, people, places)
    assert (result.filled <= places).all()
    estimates = model.estimate(people)
    placed = result.programme >= 0
    rows = np.flatnonzero(placed)
    chosen = result.programme[placed]
    assert (estimates.effect[rows, chosen] > 0).all()
    assert (estimates.eligible[rows, chosen] & estimates.in_overlap[rows, chosen]).all()
    # Places the confident pairs leave are filled: more than the default's.
    assert result.filled.sum() > places[0]
    # The service allocates from estimates it reads again (risks): the same allocation.
    again = allocate_estimates(model, estimates, places)
    assert again.programme.tolist() == result.programme.tolist()
    assert again.total == result.total and again.filled.tolist() == result.filled.tolist()


def test_without_a_default_programme_only_confident_pairs_get_places() -> None:
    from models.allocation import allocation_pairs
    from models.pathway_estimates import PathwayEstimates

    effect = np.array([[0.02, 0.05], [0.03, 0.01]])
    ones = np.ones_like(effect, dtype=bool)
    recommended = np.array([[False, True], [False, False]])
    estimates = PathwayEstimates(
        programmes=("a", "b"),
        effect=effect,
        interval_low=effect,
        interval_high=effect,
        propensity=np.full(effect.shape, 0.5),
        in_overlap=ones,
        eligible=ones,
        recommended=recommended,
    )
    confident = np.array([False, False])
    assert allocation_pairs(estimates, confident, 0, "positive").all()
    assert (allocation_pairs(estimates, confident, NO_PLACE, "positive") == recommended).all()
