"""A synthetic Integrated Offender Management cohort with a known causal structure.

The generator lets the whole pipeline run on a fresh machine, and, because its
ground truth is known, lets tests and benchmarks measure what no real dataset
can show: how close a risk model gets to the best reachable from the observed
features, and whether a pathway recommender finds who each pathway helps.

Causal structure (see ``docs/synthetic-cohort.md`` for the diagram):

1. Demographics: sex, ethnicity, age. Ethnicity has no causal effect on
   anything; it exists only so the fairness audit has something to audit.
2. A latent "instability" factor drives both the latent needs (a Gaussian
   copula with the seed's prevalences as margins) and the offending history
   (earlier first sanction, more sanctions, less time offence-free).
3. The current offence depends on alcohol misuse so that alcohol is involved
   in half of violent offences.
4. Observed needs items are noisy, partly missing screenings of the latent
   needs (sensitivity and specificity 0.7-0.9, sections "not assessed").
5. Historic referrals follow practice: driven by the observed flags and the
   record, not by the latent truth (or randomised, in the trial mode).
6. Untreated 12-month re-offending probability: a logistic model of the
   static factors, the latent needs, sex and unobserved noise.
7. Each programme lowers that probability only for people with the matching
   latent need, by a relative amount (seed figures, or documented
   assumptions); referrals multiply.

The ground truth (latent needs, probabilities, individual effects,
propensities) is returned as a separate table that is never a feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, ndtri

from data.loaders import write_table
from data.schema import (
    ASSESSMENT_FIELDS,
    ETHNICITIES,
    FIELDS,
    ID_FIELD,
    NEED_FIELDS,
    OFFENCE_CATEGORIES,
    PRINCES_TRUST,
    PRINCES_TRUST_AGE_RANGE,
    PROGRAMMES,
    SEXES,
    TARGET_FIELD,
    Pathway,
)
from data.synthetic_effects import (
    capped_relative,
    extreme_shift,
    modifiers,
    probability_under,
    prolific_terms,
)
from data.synthetic_world import (
    ALCOHOL_SHARE_OF_VIOLENCE,
    ITEM_NOT_ASSESSED,
    NEED_FACTOR_LOADING,
    NEED_TRUTH,
    NON_VIOLENT_OFFENCE_MIX,
    OFFENCE_LOGIT,
    OUTCOME_INTERCEPT,
    PROGRAMME_EFFECTS,
    SECTION_NOT_ASSESSED,
    STRUCTURAL_CENTRE,
    UNOBSERVED_RISK_SD,
    VIOLENCE_RATE_WITHOUT_ALCOHOL,
    SynthConfig,
)
from data.validation import pandas_dtype


def generate_cohort(config: SynthConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate a cohort and its ground truth.

    Parameters
    ----------
    config
        Size, seed and mode.

    Returns
    -------
    cohort : pandas.DataFrame
        What a case system would hold: schema columns with canonical types
        (assessment fields, the 12-month outcome and historic referrals).
    truth : pandas.DataFrame
        Keyed by ``subject_ref``, same row order: ``latent_<item>`` needs,
        ``p_untreated``, ``p_reoffend`` (under the person's actual
        referrals), ``effect_<programme>`` (absolute reduction if referred to
        that programme alone) and ``propensity_<programme>``.
    """
    rng = np.random.default_rng(config.seed)
    n = config.rows

    sex_female = rng.random(n) < 0.15
    ethnicity_code = rng.choice(len(ETHNICITIES), size=n, p=[0.08, 0.12, 0.05, 0.73, 0.02])
    ethnicity_missing = rng.random(n) < 0.02
    age = np.minimum(16 + np.floor(rng.gamma(2.0, 8.0, n)), 85).astype(np.int16)

    instability = rng.standard_normal(n)

    latent: dict[str, np.ndarray] = {}
    load = NEED_FACTOR_LOADING
    for name, item in NEED_TRUTH.items():
        score = load * instability + np.sqrt(1 - load**2) * rng.standard_normal(n)
        latent[name] = score > ndtri(1 - item.prevalence)

    # Index offence: violence is 7/3 times as likely with alcohol misuse,
    # which makes alcohol involved in exactly half of violent offences when
    # alcohol misuse has a 30% prevalence.
    alcohol_prev = NEED_TRUTH["alcohol_misuse"].prevalence
    odds = ALCOHOL_SHARE_OF_VIOLENCE / (1 - ALCOHOL_SHARE_OF_VIOLENCE)
    violence_with_alcohol = VIOLENCE_RATE_WITHOUT_ALCOHOL * odds * (1 - alcohol_prev) / alcohol_prev
    p_violence = np.where(
        latent["alcohol_misuse"], violence_with_alcohol, VIOLENCE_RATE_WITHOUT_ALCOHOL
    )
    violent = rng.random(n) < p_violence
    others = list(NON_VIOLENT_OFFENCE_MIX)
    other_p = np.array(list(NON_VIOLENT_OFFENCE_MIX.values()))
    other_code = rng.choice(len(others), size=n, p=other_p / other_p.sum())
    offence_index = np.array([OFFENCE_CATEGORIES.index(o) for o in others])[other_code]
    offence_index[violent] = OFFENCE_CATEGORIES.index("violence")

    # Criminal history, driven by the same instability as the needs.
    age_first = 10 + rng.gamma(2.5, 2.2, n) * np.exp(-0.25 * instability)
    age_first = np.minimum(np.floor(age_first), age).astype(np.int16)
    career_years = age - age_first + 0.5
    rate = np.exp(-0.7 + 0.45 * instability + 0.5 * rng.standard_normal(n))
    total = np.minimum(rng.poisson(rate * career_years), 500).astype(np.int16)
    juvenile_years = np.clip(np.minimum(age, 18) - age_first, 0, None)
    juvenile = rng.binomial(total, np.clip(juvenile_years / career_years, 0, 1)).astype(np.int16)
    custodial = rng.random(n) < expit(-2.2 + 0.9 * np.log1p(total))
    months_drawn = rng.exponential(6 + 0.4 * (age - 16.0), n) * np.exp(-0.3 * instability)
    months_free = np.round(np.minimum(months_drawn, 600.0), 1)

    # Observed needs items: imperfect screening, sections not assessed.
    observed: dict[str, np.ndarray] = {}
    missing: dict[str, np.ndarray] = {}
    for pathway in Pathway:
        section_missing = rng.random(n) < SECTION_NOT_ASSESSED
        for spec in NEED_FIELDS:
            if spec.pathway is not pathway:
                continue
            item = NEED_TRUTH[spec.name]
            has = latent[spec.name]
            flagged = np.where(
                has, rng.random(n) < item.sensitivity, rng.random(n) >= item.specificity
            )
            severe = rng.random(n) < np.where(has, 0.55, 0.25)
            observed[spec.name] = (flagged * (1 + severe)).astype(np.int8)
            missing[spec.name] = section_missing | (rng.random(n) < ITEM_NOT_ASSESSED)

    # Untreated 12-month re-offending probability.
    structural = (
        -0.035 * (age - 30)
        + 0.45 * np.log1p(total)
        + 0.15 * (age_first < 14)
        - 0.35 * np.log1p(months_free / 3)
        + 0.15 * custodial
        - 0.3 * sex_female
        + np.array([OFFENCE_LOGIT[o] for o in OFFENCE_CATEGORIES])[offence_index]
    )
    for name, item in NEED_TRUTH.items():
        structural = structural + item.logit_effect * latent[name]
    logit = (
        OUTCOME_INTERCEPT
        + config.risk_scale * (structural - STRUCTURAL_CENTRE)
        + UNOBSERVED_RISK_SD * rng.standard_normal(n)
    )
    # Issue 17's switches draw from their own stream, so that today's world
    # (every switch off) reproduces its cohorts exactly.
    hidden = np.random.default_rng([config.seed, 17]).standard_normal(n)
    if config.prolific_risk > 0:
        logit = logit + config.prolific_risk * prolific_terms(total, months_free, custodial, age)
    if config.confounding > 0:
        logit = logit + config.confounding * hidden
    p_untreated = expit(logit)

    # Who each programme helps, and by how much (relative).
    young = (age >= PRINCES_TRUST_AGE_RANGE[0]) & (age <= PRINCES_TRUST_AGE_RANGE[1])
    drivers = {
        **{name: has.astype(np.float64) for name, has in latent.items()},
        "younger": np.clip((30.0 - age) / 10.0, -3.0, 1.4),
        "female": sex_female.astype(np.float64),
        "instability": instability,
    }
    relative: dict[str, np.ndarray] = {}
    for programme in PROGRAMMES:
        effect = PROGRAMME_EFFECTS[programme]
        present = np.stack([latent[need] for need in effect.needs])
        share = present.mean(axis=0) if effect.scale_by_share else present.any(axis=0)
        eligible = young if programme == PRINCES_TRUST else np.ones(n, dtype=bool)
        relative[programme] = config.effect_scale * effect.relative_reduction * share * eligible
        if config.effect_heterogeneity > 0:
            weight = share * eligible
            modifier = modifiers(drivers, weight, programme, config.effect_heterogeneity)
            relative[programme] = capped_relative(
                relative[programme] * modifier, relative[programme]
            )

    # Historic referrals.
    observed_record = np.log1p(total) - 1.5
    propensity: dict[str, np.ndarray] = {}
    for programme in PROGRAMMES:
        if config.referrals == "randomised":
            p_ref = np.full(n, 0.5)
        else:
            needs = PROGRAMME_EFFECTS[programme].needs
            flags = sum(np.where(missing[i], 0, observed[i]) for i in needs)
            referral_logit = -2.0 + 1.0 * flags + 0.3 * observed_record
            if config.referral_extremes > 0:
                shift = extreme_shift(programme, observed, missing, age)
                referral_logit = referral_logit + config.referral_extremes * shift
            if config.confounding > 0:
                referral_logit = referral_logit + config.confounding * hidden
            p_ref = expit(referral_logit)
        if programme == PRINCES_TRUST:
            p_ref = p_ref * young
        propensity[programme] = p_ref
    referred = {prog: rng.random(n) < propensity[prog] for prog in PROGRAMMES}

    relative_all = np.column_stack([relative[prog] for prog in PROGRAMMES])
    referred_all = np.column_stack([referred[prog] for prog in PROGRAMMES])
    p_reoffend = probability_under(p_untreated, relative_all, referred_all, config)
    # The absolute reduction from each programme alone (purely relative: the
    # untreated risk times the relative reduction, exactly).
    alone = np.eye(len(PROGRAMMES), dtype=bool)
    effect_alone = {
        prog: p_untreated * relative[prog]
        if config.additive_share == 0
        else p_untreated
        - probability_under(p_untreated, relative_all, np.tile(alone[j], (n, 1)), config)
        for j, prog in enumerate(PROGRAMMES)
    }
    outcome = rng.random(n) < p_reoffend

    refs = pd.array(
        np.char.add(f"S{config.seed}-", np.char.zfill(np.arange(n).astype("U8"), 7)),
        dtype="string",
    )
    juvenile_missing = rng.random(n) < 0.03
    cohort = pd.DataFrame(
        {
            ID_FIELD: refs,
            "age": pd.array(age, dtype="Int16"),
            "age_first_sanction": pd.array(age_first, dtype="Int16"),
            "total_sanctions": pd.array(total, dtype="Int16"),
            "juvenile_sanctions": pd.arrays.IntegerArray(juvenile, juvenile_missing),
            "offence_category": pd.Categorical.from_codes(offence_index, OFFENCE_CATEGORIES),
            "custodial_history": pd.array(custodial.astype(np.int8), dtype="Int8"),
            "months_offence_free": months_free,
            **{name: pd.arrays.IntegerArray(observed[name], missing[name]) for name in observed},
            "ethnicity": pd.Categorical.from_codes(
                np.where(ethnicity_missing, -1, ethnicity_code), ETHNICITIES
            ),
            "sex": pd.Categorical.from_codes(sex_female.astype(np.int8), SEXES),
            TARGET_FIELD: pd.array(outcome.astype(np.int8), dtype="Int8"),
            **{
                f"referred_{prog}": pd.array(referred[prog].astype(np.int8), dtype="Int8")
                for prog in PROGRAMMES
            },
        }
    )
    # Assessment fields this cohort does not model (court-record facts, US race)
    # are present as "not assessed", in schema order, as validation returns them.
    absent = {
        spec.name: pd.Series(index=cohort.index, dtype=pandas_dtype(spec))
        for spec in ASSESSMENT_FIELDS
        if spec.name not in cohort.columns
    }
    order = [spec.name for spec in FIELDS if spec.name in cohort.columns or spec.name in absent]
    cohort = cohort.assign(**absent)[order]
    truth = pd.DataFrame(
        {
            ID_FIELD: refs,
            "instability": instability,
            "hidden_confounder": hidden,
            **{f"latent_{name}": latent[name] for name in NEED_TRUTH},
            "p_untreated": p_untreated,
            "p_reoffend": p_reoffend,
            **{f"relative_effect_{prog}": relative[prog] for prog in PROGRAMMES},
            **{f"effect_{prog}": effect_alone[prog] for prog in PROGRAMMES},
            **{f"propensity_{prog}": propensity[prog] for prog in PROGRAMMES},
        }
    )
    return cohort, truth


@dataclass(frozen=True, slots=True)
class CohortFiles:
    """Where a generated cohort was written, with headline figures."""

    cohort_path: Path
    truth_path: Path
    rows: int
    reoffending_rate: float


def truth_path_for(cohort_path: Path) -> Path:
    """Return the ground-truth file that belongs to ``cohort_path``.

    ``cohort.parquet`` -> ``cohort.truth.parquet``: a separate file, so the
    truth can never be read as a feature by accident.
    """
    return cohort_path.with_name(f"{cohort_path.stem}.truth{cohort_path.suffix}")


def write_cohort(config: SynthConfig, out: Path) -> CohortFiles:
    """Generate a cohort and write it and its ground truth beside each other.

    Parameters
    ----------
    config
        Size, seed and mode.
    out
        ``.csv`` or ``.parquet`` path of the cohort; the truth goes to
        :func:`truth_path_for` of it, in the same format.
    """
    cohort, truth = generate_cohort(config)
    truth_path = truth_path_for(out)
    write_table(cohort, out)
    write_table(truth, truth_path)
    rate = float(cohort[TARGET_FIELD].to_numpy(dtype="float64").mean())
    return CohortFiles(out, truth_path, len(cohort), rate)
