"""The world a synthetic cohort is drawn from: its settings and its fixed figures.

:class:`SynthConfig` holds the settings of one cohort (size, seed, referral
regime and issue 17's switches: heterogeneity, additive effects, overlap,
unobserved confounding, prolific risk), with :data:`TODAYS_WORLD` and
:data:`HARDER_WORLD` as named sets of switches. The module-level tables are
the world's fixed figures, each marked as a seed figure or an assumption:
needs prevalence and screening accuracy, programme effects, offence mix and
the untreated outcome model's scale. :mod:`data.synthetic` draws people
from them; ``docs/synthetic-cohort.md`` documents them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from data.schema import PRINCES_TRUST, Pathway


class SynthConfig(BaseModel):
    """Settings of one synthetic cohort.

    Attributes
    ----------
    rows
        Number of people.
    seed
        Seed of the random generator; equal seeds give equal cohorts.
    referrals
        ``"practice"``: referrals follow observed needs (confounded);
        ``"randomised"``: every eligible person has a 50% chance of each
        referral, as in a trial.
    effect_scale
        Multiplies every programme's effect; 0 gives a cohort in which no
        programme works.
    effect_heterogeneity
        Strength of the effect modifiers (:data:`EFFECT_MODIFIERS`): who
        benefits from what beyond having the matching need. Each
        programme's mean relative effect among people with the need stays
        the configured figure. 0: today's world (same effect for everyone
        with the need).
    additive_share
        Share of each programme's effect that is an absolute reduction (the
        same number of points whatever the person's risk) rather than a
        relative one; 0: purely multiplicative, as today.
    further_referral_weight
        How much each further referral counts, relative to the previous one
        (largest effect first): 0.5 means a second programme adds half its
        own effect, a third a quarter. 1: referrals multiply fully, as today.
    referral_extremes
        Strength of the practice rules that make some referrals (almost)
        certain or (almost) impossible (:data:`REFERRAL_EXTREMES`): imperfect
        overlap. 0: today's smooth referral model.
    confounding
        Strength of an unobserved confounder: a hidden factor (what the
        offender manager sees in the room) that raises both the referral
        log-odds of every programme and the untreated re-offending log-odds
        by this much per standard deviation. 0: no unobserved confounding.
    prolific_risk
        Extra untreated log-odds of a prolific, recently released record
        (:data:`PROLIFIC_WEIGHTS`), so that a prolific cohort has the spread
        of risk IOM teams see. 0: today's world.
    risk_scale
        Multiplies the risk weights of the untreated outcome model (today's
        world: :data:`RISK_SCALE`, 1.9). The harder world's wider spread
        (prolific records, fewer referrals stacking up) would otherwise put
        the true AUC above real tools' 0.72-0.82.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int = Field(default=20_000, ge=1, le=50_000_000)
    seed: int = Field(default=0, ge=0)
    referrals: Literal["practice", "randomised"] = "practice"
    effect_scale: float = Field(default=1.0, ge=0.0, le=2.0)
    # Defaults: today's world, so that ``make run``, the golden files and
    # every existing cohort stay as they were; :data:`HARDER_WORLD` switches
    # issue 17's world on.
    effect_heterogeneity: float = Field(default=0.0, ge=0.0, le=2.0)
    additive_share: float = Field(default=0.0, ge=0.0, le=1.0)
    further_referral_weight: float = Field(default=1.0, ge=0.0, le=1.0)
    referral_extremes: float = Field(default=0.0, ge=0.0, le=2.0)
    confounding: float = Field(default=0.0, ge=0.0, le=3.0)
    prolific_risk: float = Field(default=0.0, ge=0.0, le=2.0)
    risk_scale: float = Field(default=1.9, gt=0.0, le=4.0)

    @model_serializer(mode="wrap")
    def _without_todays_switches(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        # Issue 17's switches are left out of the dump while they hold
        # today's values, so a config of today's world dumps exactly as it
        # did before they existed: dataset fingerprints, run parameters and
        # the golden files' pinned specs stay the same.
        dumped: dict[str, Any] = handler(self)
        for name, value in TODAYS_WORLD.items():
            if dumped.get(name) == value:
                del dumped[name]
        return dumped


#: The switches that give the world of desist before issue 17 (a test checks
#: that they reproduce its cohorts bit for bit). They are ``SynthConfig``'s
#: defaults.
TODAYS_WORLD: dict[str, float] = {
    "effect_heterogeneity": 0.0,
    "additive_share": 0.0,
    "further_referral_weight": 1.0,
    "referral_extremes": 0.0,
    "confounding": 0.0,
    "prolific_risk": 0.0,
    "risk_scale": 1.9,
}

#: Issue 17's harder world: who benefits differs beyond the need, 30% of each
#: effect is additive, further referrals count half as much, practice rules
#: make some referrals (almost) certain or impossible, prolific records carry
#: more risk. Unobserved confounding stays a separate switch (0 here).
HARDER_WORLD: dict[str, float] = {
    "effect_heterogeneity": 1.0,
    "additive_share": 0.3,
    "further_referral_weight": 0.5,
    "referral_extremes": 1.0,
    "confounding": 0.0,
    "prolific_risk": 1.0,
    "risk_scale": 1.5,
}


def todays_world(**settings: object) -> SynthConfig:
    """Return a config of the world before issue 17 (``settings`` override, e.g. rows, seed)."""
    return SynthConfig(**{**TODAYS_WORLD, **settings})  # type: ignore[arg-type]


def harder_world(**settings: object) -> SynthConfig:
    """Return a config of issue 17's harder world (``settings`` override, e.g. confounding)."""
    return SynthConfig(**{**HARDER_WORLD, **settings})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class NeedItemTruth:
    """How one needs item relates to its latent need.

    ``prevalence`` is the latent need's share of the cohort; ``source`` says
    whether it is a seed figure or a documented assumption.
    """

    prevalence: float
    sensitivity: float
    specificity: float
    logit_effect: float
    source: str


#: Latent prevalence, screening accuracy and risk weight of each needs item.
NEED_TRUTH: dict[str, NeedItemTruth] = {
    "drug_misuse": NeedItemTruth(0.66, 0.85, 0.80, 0.45, "seed: two thirds used illegal drugs"),
    "alcohol_misuse": NeedItemTruth(0.30, 0.75, 0.85, 0.20, "assumption"),
    "unemployed": NeedItemTruth(0.60, 0.90, 0.85, 0.35, "assumption"),
    "literacy_numeracy": NeedItemTruth(0.45, 0.75, 0.80, 0.10, "assumption"),
    "no_settled_accommodation": NeedItemTruth(
        1 / 3, 0.85, 0.85, 0.35, "seed: one third without settled accommodation"
    ),
    "unsuitable_accommodation": NeedItemTruth(0.25, 0.70, 0.80, 0.15, "assumption"),
    "procriminal_attitudes": NeedItemTruth(0.50, 0.75, 0.75, 0.40, "assumption"),
    "impulsivity": NeedItemTruth(0.55, 0.80, 0.75, 0.30, "assumption"),
    "debt": NeedItemTruth(0.48, 0.80, 0.85, 0.10, "seed: 48% report a history of debt"),
    "benefit_dependence": NeedItemTruth(0.81, 0.90, 0.80, 0.05, "seed: 81% claim benefit"),
    "family_relationships": NeedItemTruth(0.35, 0.75, 0.80, 0.15, "assumption"),
    "parenting_responsibilities": NeedItemTruth(0.20, 0.80, 0.90, 0.00, "assumption"),
    "emotional_wellbeing": NeedItemTruth(
        0.31, 0.75, 0.85, 0.10, "seed: 31% with emotional wellbeing issues"
    ),
    "mental_health_treatment": NeedItemTruth(0.25, 0.85, 0.90, 0.05, "assumption"),
}

#: Correlation of each latent need with the shared instability factor.
NEED_FACTOR_LOADING = 0.5

#: Share of violent index offences that involve alcohol (seed: about half).
ALCOHOL_SHARE_OF_VIOLENCE = 0.5
VIOLENCE_RATE_WITHOUT_ALCOHOL = 0.15

#: Index offence mix of non-violent offences (assumption, roughly the mix of
#: an IOM caseload: acquisitive crime dominates).
NON_VIOLENT_OFFENCE_MIX: dict[str, float] = {
    "robbery": 0.06,
    "burglary": 0.14,
    "theft": 0.30,
    "drugs": 0.14,
    "fraud": 0.05,
    "criminal_damage": 0.08,
    "public_order": 0.08,
    "motoring": 0.08,
    "sexual": 0.02,
    "other": 0.05,
}
OFFENCE_LOGIT: dict[str, float] = {
    "violence": 0.0,
    "robbery": 0.1,
    "burglary": 0.25,
    "theft": 0.3,
    "drugs": 0.1,
    "fraud": -0.2,
    "criminal_damage": 0.1,
    "public_order": 0.1,
    "motoring": -0.1,
    "sexual": -0.6,
    "other": 0.0,
}


@dataclass(frozen=True, slots=True)
class ProgrammeEffect:
    """Relative reduction in re-offending probability for people in need.

    ``needs`` are the latent needs the programme addresses; the reduction is
    ``relative_reduction`` times the share of those needs present when
    ``scale_by_share`` (thinking skills work "up to" 14%), else the full
    reduction when any is present.
    """

    relative_reduction: float
    needs: tuple[str, ...]
    scale_by_share: bool
    source: str


PROGRAMME_EFFECTS: dict[str, ProgrammeEffect] = {
    Pathway.DRUGS_ALCOHOL: ProgrammeEffect(
        0.15, ("drug_misuse", "alcohol_misuse"), False, "assumption"
    ),
    Pathway.EDUCATION_EMPLOYMENT: ProgrammeEffect(
        1 / 3, ("unemployed",), False, "seed: employment reduces re-offending by one third"
    ),
    Pathway.ACCOMMODATION: ProgrammeEffect(
        0.20, ("no_settled_accommodation",), False, "seed: accommodation, more than a fifth"
    ),
    Pathway.THINKING_BEHAVIOUR: ProgrammeEffect(
        0.14, ("procriminal_attitudes", "impulsivity"), True, "seed: up to 14%"
    ),
    Pathway.FINANCE_DEBT: ProgrammeEffect(0.08, ("debt",), False, "assumption"),
    Pathway.CHILDREN_FAMILIES: ProgrammeEffect(
        0.10, ("family_relationships", "parenting_responsibilities"), False, "assumption"
    ),
    Pathway.HEALTH: ProgrammeEffect(
        0.08, ("emotional_wellbeing", "mental_health_treatment"), False, "assumption"
    ),
    PRINCES_TRUST: ProgrammeEffect(
        0.15,
        ("unemployed", "literacy_numeracy"),
        False,
        "assumption; ages 16-25 only",
    ),
}

#: Chance that a whole pathway section, or a single item, was not assessed.
SECTION_NOT_ASSESSED = 0.07
ITEM_NOT_ASSESSED = 0.02

#: Intercept of the untreated outcome model, tuned so the managed cohort
#: re-offends at about 37% within 12 months once historic referrals have
#: worked (untreated about 51%; the issue asks for 30-45%).
OUTCOME_INTERCEPT = 0.05
#: Multiplies the risk weights (kept readable at their relative sizes) so
#: that the observed features carry about as much signal as real tools find.
RISK_SCALE = 1.9
#: Mean of the unscaled risk score in a large cohort, so the intercept reads
#: as the log-odds of an average person.
STRUCTURAL_CENTRE = 1.887
#: Spread of unobserved individual risk: keeps the AUC of the true
#: probabilities where real tools sit (0.72-0.82), not near 1.
UNOBSERVED_RISK_SD = 0.5
