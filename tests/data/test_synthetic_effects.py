"""The harder world's effect arithmetic: caps, referral weights and combined probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.synthetic_effects import (
    ADDITIVE_REFERENCE_RISK,
    MAX_RELATIVE_REDUCTION,
    RESIDUAL_RISK_FLOOR,
    capped_relative,
    probability_under,
    referral_weights,
)


@dataclass(frozen=True)
class World:
    additive_share: float
    further_referral_weight: float


def test_capped_relative_caps_and_keeps_the_plain_mean() -> None:
    plain = np.array([0.2, 0.2, 0.2, 0.2])
    modified = np.array([0.9, 0.05, 0.02, 0.03])  # same total, one above the cap
    out = capped_relative(modified, plain)
    assert out.max() <= MAX_RELATIVE_REDUCTION
    assert abs(out.sum() - plain.sum()) < 1e-9


def test_referral_weights_count_the_largest_referral_fully_and_the_rest_less() -> None:
    effects = np.array([[0.1, 0.3, 0.2]])
    referred = np.array([[True, True, False]])
    weights = referral_weights(effects, referred, further=0.5)
    np.testing.assert_array_equal(weights, [[0.5, 1.0, 0.0]])
    np.testing.assert_array_equal(referral_weights(effects, referred, 1.0), [[1.0, 1.0, 0.0]])


def test_probability_under_multiplies_without_an_additive_part() -> None:
    p0 = np.array([0.6, 0.4])
    relative = np.array([[0.2, 0.1], [0.0, 0.5]])
    referred = np.array([[1, 1], [0, 1]])
    p = probability_under(p0, relative, referred, World(0.0, 1.0))
    np.testing.assert_allclose(p, [0.6 * 0.8 * 0.9, 0.4 * 0.5])


def test_an_additive_part_lowers_a_below_reference_risk_further_but_never_below_the_floor() -> None:
    # The additive part takes the same absolute amount whatever the risk (as at the reference
    # risk 0.5), so below the reference it lowers risk more than a purely relative effect.
    p0 = np.array([0.3, 0.05])
    relative = np.array([[0.3], [0.6]])
    referred = np.array([[1], [1]])
    plain = probability_under(p0, relative, referred, World(0.0, 1.0))
    mixed = probability_under(p0, relative, referred, World(0.5, 1.0))
    assert mixed[0] < plain[0] and p0[0] < ADDITIVE_REFERENCE_RISK
    at_reference = np.array([ADDITIVE_REFERENCE_RISK])
    np.testing.assert_allclose(
        probability_under(at_reference, relative[:1], referred[:1], World(0.5, 1.0)),
        probability_under(at_reference, relative[:1], referred[:1], World(0.0, 1.0)),
    )
    assert mixed[1] == RESIDUAL_RISK_FLOOR * p0[1]  # a low-risk person hits the floor
    untouched = probability_under(p0, relative, np.zeros_like(referred), World(0.5, 1.0))
    np.testing.assert_array_equal(untouched, p0)
