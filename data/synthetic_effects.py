"""Issue 17's harder world: effect modifiers, overlap extremes, prolific risk, combined referrals.

Constants and pure functions :func:`data.synthetic.generate_cohort` uses
when the harder world's switches are on (see ``docs/synthetic-cohort.md``);
split from :mod:`data.synthetic` so each file stays readable.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from data.schema import PRINCES_TRUST, Pathway


class CombinationSettings(Protocol):
    """The world settings :func:`probability_under` reads (a ``SynthConfig``)."""

    @property
    def additive_share(self) -> float:
        """Share of each effect that is absolute."""
        ...

    @property
    def further_referral_weight(self) -> float:
        """Weight of each further referral relative to the previous one."""
        ...


#: Effect modifiers (issue 17): log-scale weights of who benefits more from
#: each programme among people with its matching need, times
#: ``effect_heterogeneity``. Drivers: latent needs (0/1), ``younger`` ((30 -
#: age) / 10, within [-3, 1.4]), ``female`` and ``instability``. Each
#: programme's multipliers are normalised to mean 1 among people with the
#: need, so the configured reductions stay the average effects. Rationale
#: (assumptions, in the spirit of "stabilise first, then work"): active drug
#: use and no settled address undermine employment and debt work; treatment
#: works better for older users and for those with a roof; family work
#: reaches parents and women most; thinking skills and the Prince's Trust
#: reach the young; everyone with a chaotic life (instability) engages less.
EFFECT_MODIFIERS: dict[str, dict[str, float]] = {
    Pathway.DRUGS_ALCOHOL: {
        "alcohol_misuse": 0.6,
        "no_settled_accommodation": -0.8,
        "younger": -0.4,
    },
    Pathway.EDUCATION_EMPLOYMENT: {
        "drug_misuse": -1.5,
        "no_settled_accommodation": -0.8,
        "literacy_numeracy": -0.5,
        "younger": 0.4,
    },
    Pathway.ACCOMMODATION: {"unsuitable_accommodation": 0.6, "family_relationships": 0.5},
    Pathway.THINKING_BEHAVIOUR: {"younger": 0.6, "procriminal_attitudes": 0.4},
    Pathway.FINANCE_DEBT: {"benefit_dependence": 0.8, "unemployed": -0.6},
    Pathway.CHILDREN_FAMILIES: {"parenting_responsibilities": 1.0, "female": 0.8},
    Pathway.HEALTH: {"mental_health_treatment": 0.8, "drug_misuse": -0.4},
    PRINCES_TRUST: {"younger": 0.8, "literacy_numeracy": 0.6},
}
#: Responsivity: every programme's log multiplier falls by this per standard
#: deviation of instability (times ``effect_heterogeneity``).
RESPONSIVITY_INSTABILITY = -0.25
#: No person's relative reduction from one programme exceeds this.
MAX_RELATIVE_REDUCTION = 0.75
#: The absolute part of an effect is ``additive_share`` x relative reduction
#: x this risk (about the untreated cohort mean), the same for everyone.
ADDITIVE_REFERENCE_RISK = 0.5
#: No combination of programmes removes more than this share of a person's
#: untreated risk (binds only with an additive part).
RESIDUAL_RISK_FLOOR = 0.2

#: Practice rules that make referrals (almost) certain or impossible: extra
#: referral log-odds, times ``referral_extremes``, per (programme, rule).
#: Rules read the observed record: a significant drug problem (licence
#: conditions) or no fixed abode are almost always referred; people of 55
#: and over are almost never sent to employment work; nobody without a
#: flagged family item is sent to family work.
REFERRAL_EXTREMES: dict[str, tuple[tuple[str, float], ...]] = {
    Pathway.DRUGS_ALCOHOL: (("drug_misuse significant", 3.0),),
    Pathway.ACCOMMODATION: (("no_settled_accommodation significant", 3.0),),
    Pathway.EDUCATION_EMPLOYMENT: (("age 55 or over", -3.5),),
    Pathway.CHILDREN_FAMILIES: (("no family item flagged", -3.5),),
    Pathway.HEALTH: (("mental_health_treatment significant", 2.5),),
}

#: Extra untreated log-odds of a prolific record, times ``prolific_risk``:
#: per (rule, weight), minus ``PROLIFIC_CENTRE`` so the cohort's average
#: risk moves little. IOM caseloads hold people who re-offend within months
#: whatever is done; today's world compresses them (issue 17).
PROLIFIC_WEIGHTS: dict[str, float] = {
    "offence-free under 3 months": 0.6,
    "custody and 15 or more sanctions": 0.5,
    "under 25 with 10 or more sanctions": 0.7,
    "aged 21 or under": 0.3,
}
PROLIFIC_CENTRE = 0.4


def prolific_terms(
    total: np.ndarray, months_free: np.ndarray, custodial: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """Return the extra untreated log-odds of each person's record (before the switch)."""
    rules = {
        "offence-free under 3 months": months_free < 3,
        "custody and 15 or more sanctions": (total >= 15) & custodial,
        "under 25 with 10 or more sanctions": (age < 25) & (total >= 10),
        "aged 21 or under": age <= 21,
    }
    return sum(PROLIFIC_WEIGHTS[name] * rule for name, rule in rules.items()) - PROLIFIC_CENTRE


def extreme_shift(
    programme: str, observed: dict[str, np.ndarray], missing: dict[str, np.ndarray], age: np.ndarray
) -> np.ndarray:
    """Return the extra referral log-odds of the practice rules for ``programme``."""

    def level(item: str) -> np.ndarray:
        return np.where(missing[item], 0, observed[item])

    shift = np.zeros(age.shape)
    for rule, weight in REFERRAL_EXTREMES.get(programme, ()):
        if rule.endswith(" significant"):
            applies = level(rule.removesuffix(" significant")) == 2
        elif rule == "age 55 or over":
            applies = age >= 55
        else:  # no family item flagged
            applies = (level("family_relationships") + level("parenting_responsibilities")) == 0
        shift = shift + weight * applies
    return shift


def modifiers(
    drivers: dict[str, np.ndarray], share: np.ndarray, programme: str, strength: float
) -> np.ndarray:
    """Return each person's effect multiplier, mean 1 (share-weighted) among those with the need."""
    score = RESPONSIVITY_INSTABILITY * drivers["instability"]
    for driver, weight in EFFECT_MODIFIERS[programme].items():
        score = score + weight * drivers[driver]
    raw = np.exp(strength * score)
    total = float((share * raw).sum())
    return raw * (float(share.sum()) / total) if total > 0 else raw


def capped_relative(modified: np.ndarray, plain: np.ndarray) -> np.ndarray:
    """Cap relative reductions at the maximum, rescaling the rest to keep the plain mean."""
    target = float(plain.sum())
    out = np.minimum(modified, MAX_RELATIVE_REDUCTION)
    for _ in range(6):
        total = float(out.sum())
        if total <= 0 or abs(total - target) <= 1e-9 * target:
            break
        out = np.minimum(out * (target / total), MAX_RELATIVE_REDUCTION)
    return out


def referral_weights(effects: np.ndarray, referred: np.ndarray, further: float) -> np.ndarray:
    """Return how much each referral counts: 1 for the largest, ``further`` per rank after it.

    ``effects`` and ``referred`` have shape ``(n, k)``; programmes not
    referred get weight 0.
    """
    if further == 1.0:
        return referred.astype(np.float64)
    order = np.argsort(-(effects * referred), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(effects.shape[1])[None, :], axis=1)
    return np.where(referred, float(further) ** rank, 0.0)


def probability_under(
    p_untreated: np.ndarray,
    relative: np.ndarray,
    referred: np.ndarray,
    config: CombinationSettings,
) -> np.ndarray:
    """Return the true re-offending probability under the given referrals.

    Parameters
    ----------
    p_untreated
        Untreated probability per person, shape ``(n,)``.
    relative
        Each person's relative reduction from each programme (the
        ``relative_effect_<programme>`` truth columns), shape ``(n, k)``.
    referred
        0/1 referrals, shape ``(n, k)``, ``PROGRAMMES`` order.
    config
        The world (``additive_share`` and ``further_referral_weight``).
    """
    weight = referral_weights(relative, referred.astype(bool), config.further_referral_weight)
    share = config.additive_share
    p = p_untreated.copy()
    for j in range(relative.shape[1]):
        p *= 1 - weight[:, j] * (1 - share) * relative[:, j]
    if share > 0:
        p = p - ADDITIVE_REFERENCE_RISK * share * (weight * relative).sum(axis=1)
        p = np.maximum(p, RESIDUAL_RISK_FLOOR * p_untreated)
    return p
