"""A later synthetic cohort with a configured shift, and what its deployment records.

The synthetic generator (:mod:`data.synthetic`) draws one population. A later
population that has moved is drawn from it without changing the generator:

- **age** by ``age_shift_sd`` standard deviations: a larger cohort is drawn
  and resampled by rejection with weights ``exp(theta * age)`` (exponential
  tilting; ``theta`` solved so the weighted mean age moves by exactly that);
- **drug need** by ``drug_need_points``: rejection on the latent need
  (``latent_drug_misuse`` of the truth), so its prevalence rises by that many
  points and whatever goes with it (observed flags, the record) follows;
- **re-offending rate** by ``reoffending_points``: the true probabilities'
  log-odds move by one constant, solved so their mean rises by that many
  points, and outcomes are redrawn coupled to the old ones (a person who
  re-offended still does; others now do with probability ``(p' - p)/(1 - p)``).
  The assessments do not change: the world did, not the people.

Rejection keeps each accepted person's row exact; the cohort keeps the
generator's subject references, so no two rows share one.

:func:`simulate_deployment_records` then gives the records a deployment
would hold: when each score was served, an outcomes file drawn from the
outcome (sanction dates inside the 12-month window, follow-up to its end),
and practitioners' decisions with a share of overrides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import brentq
from scipy.special import expit, logit

from data.decisions import ACCEPTED, DECISION_BANDS, OVERRIDDEN
from data.outcomes import FOLLOW_UP_END, OUTCOME_DATE
from data.schema import ID_FIELD, TARGET_FIELD
from data.synthetic import SynthConfig, generate_cohort

#: Largest pool drawn, as a multiple of the rows wanted, before giving up.
MAX_POOL_FACTOR = 64


class ShiftConfig(BaseModel):
    """How a later cohort differs from the training population."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    age_shift_sd: float = Field(default=0.0, ge=-1.0, le=1.0)
    drug_need_points: float = Field(default=0.0, ge=-0.3, le=0.3)
    reoffending_points: float = Field(default=0.0, ge=0.0, le=0.3)

    @property
    def is_null(self) -> bool:
        """Whether nothing is shifted."""
        return (
            self.age_shift_sd == 0 and self.drug_need_points == 0 and self.reoffending_points == 0
        )


def _tilt(age: np.ndarray, shift_sd: float) -> np.ndarray:
    """Return weights exp(theta * age) that move the mean age by ``shift_sd`` sd."""
    target = age.mean() + shift_sd * age.std()
    centred = age - age.mean()

    def moved(theta: float) -> float:
        w = np.exp(theta * centred)
        return float(np.sum(w * age) / np.sum(w)) - target

    theta = brentq(moved, -1.0, 1.0)
    return np.exp(theta * centred)


def _weights(truth: pd.DataFrame, cohort: pd.DataFrame, shift: ShiftConfig) -> np.ndarray:
    weights = np.ones(len(cohort))
    if shift.age_shift_sd:
        weights *= _tilt(cohort["age"].to_numpy(dtype=np.float64), shift.age_shift_sd)
    if shift.drug_need_points:
        has = truth["latent_drug_misuse"].to_numpy(dtype=bool)
        now = has.mean()
        target = now + shift.drug_need_points
        if not 0 < target < 1:
            raise ValueError(f"drug need prevalence {now:.2f} cannot move to {target:.2f}")
        weights *= np.where(has, target / now, (1 - target) / (1 - now))
    return weights


def _raise_rate(
    cohort: pd.DataFrame, truth: pd.DataFrame, points: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = np.clip(truth["p_reoffend"].to_numpy(dtype=np.float64), 1e-9, 1 - 1e-9)
    target = p.mean() + points
    delta = brentq(lambda d: float(expit(logit(p) + d).mean()) - target, -10.0, 10.0)
    raised = expit(logit(p) + delta)
    before = cohort[TARGET_FIELD].to_numpy(dtype=np.int8)
    now = np.where(before == 1, 1, rng.random(len(p)) < (raised - p) / (1 - p)).astype(np.int8)
    return (
        cohort.assign(**{TARGET_FIELD: pd.array(now, dtype="Int8")}),
        truth.assign(p_reoffend=raised),
    )


def draw_later_cohort(
    rows: int, seed: int, shift: ShiftConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw ``rows`` people of a later population, shifted as ``shift`` says.

    Returns
    -------
    cohort, truth
        As :func:`data.synthetic.generate_cohort` returns them, same columns.

    Raises
    ------
    ValueError
        If the shift is so strong that even a pool :data:`MAX_POOL_FACTOR`
        times larger does not give ``rows`` people.
    """
    rng = np.random.default_rng([seed, 18])
    if shift.age_shift_sd == 0 and shift.drug_need_points == 0:
        cohort, truth = generate_cohort(SynthConfig(rows=rows, seed=seed))
    else:
        factor = 4
        while True:
            pool, pool_truth = generate_cohort(SynthConfig(rows=rows * factor, seed=seed))
            weights = _weights(pool_truth, pool, shift)
            accepted = np.flatnonzero(rng.random(len(pool)) < weights / weights.max())
            if accepted.size >= rows or factor >= MAX_POOL_FACTOR:
                break
            factor *= 2
        if accepted.size < rows:
            raise ValueError(f"shift {shift} too strong: {accepted.size} of {rows} people drawn")
        keep = accepted[:rows]
        cohort = pool.iloc[keep].reset_index(drop=True)
        truth = pool_truth.iloc[keep].reset_index(drop=True)
    if shift.reoffending_points:
        cohort, truth = _raise_rate(cohort, truth, shift.reoffending_points, rng)
    return cohort, truth


@dataclass(frozen=True, eq=False)
class DeploymentRecords:
    """What a simulated deployment records.

    Attributes
    ----------
    served
        ``request_id``, ``subject_ref`` and ``time`` (UTC) of each score.
    outcomes
        The outcomes file (:data:`data.outcomes.OUTCOME_COLUMNS`), dates as text.
    decisions
        The decisions table (:data:`data.decisions.DECISION_COLUMNS`).
    """

    served: pd.DataFrame
    outcomes: pd.DataFrame
    decisions: pd.DataFrame


def simulate_outcomes(
    cohort: pd.DataFrame,
    day: pd.DatetimeIndex,
    rng: np.random.Generator,
    *,
    follow_up_days: int = 400,
) -> pd.DataFrame:
    """Return the outcomes file of people scored on ``day``, drawn from their 12-month outcome.

    Someone whose ``reoffended_12m`` is 1 has a sanction dated uniformly
    inside the window after ``day``; every record is followed up for
    ``follow_up_days`` (over a year, so every window matures). Dates are text,
    as a file holds them.
    """
    y = cohort[TARGET_FIELD].to_numpy(dtype=np.int8)
    lag = pd.to_timedelta(rng.integers(1, 365, len(cohort)), unit="D")
    sanction = pd.Series(day + lag).where(y == 1)
    return pd.DataFrame(
        {
            ID_FIELD: cohort[ID_FIELD].astype("string").to_numpy(),
            OUTCOME_DATE: sanction.dt.strftime("%Y-%m-%d").to_numpy(),
            FOLLOW_UP_END: (day + pd.Timedelta(days=follow_up_days)).strftime("%Y-%m-%d"),
        }
    )


def simulate_decisions(
    served: pd.DataFrame, bands: pd.Series, rng: np.random.Generator, *, override_rate: float
) -> pd.DataFrame:
    """Return one decision per served score, some overridden and some of those revised.

    ``served`` holds ``request_id``, ``subject_ref`` and ``time`` of each
    score, ``bands`` the band served. A score is overridden one band up or
    down with probability ``override_rate`` (a tenth of overrides get a
    second revision a day later), else accepted; columns as
    :data:`data.decisions.DECISION_COLUMNS`.
    """
    n = len(served)
    served_band = bands.astype(str).to_numpy()
    overridden = rng.random(n) < override_rate
    position = np.array([DECISION_BANDS.index(b) for b in served_band])
    step = np.where(position == 0, 1, np.where(position == len(DECISION_BANDS) - 1, -1, 0))
    step = np.where(step == 0, rng.choice([-1, 1], n), step)
    other = np.asarray(DECISION_BANDS, dtype=object)[position + step]
    decisions = pd.DataFrame(
        {
            "time": pd.DatetimeIndex(pd.to_datetime(served["time"], utc=True))
            + pd.Timedelta(hours=1),
            "request_id": served["request_id"].to_numpy(),
            ID_FIELD: served[ID_FIELD].to_numpy(),
            "revision": 1,
            "decision": np.where(overridden, OVERRIDDEN, ACCEPTED),
            "override_band": np.where(overridden, other, None),
            "override_action": None,
            "reason": pd.Series("professional judgement: simulated", index=range(n)).where(
                overridden
            ),
            "practitioner_ref": np.char.add("P", rng.integers(1, 40, n).astype("U3")),
        }
    )
    revised = decisions[overridden & (rng.random(n) < 0.1)].assign(
        time=lambda d: d["time"] + pd.Timedelta(days=1), revision=2
    )
    return pd.concat([decisions, revised], ignore_index=True)


def simulate_deployment_records(
    cohort: pd.DataFrame,
    bands: pd.Series,
    *,
    start: str = "2025-01-01",
    days: int = 90,
    follow_up_days: int = 400,
    override_rate: float = 0.08,
    seed: int = 0,
) -> DeploymentRecords:
    """Simulate when each person was scored, their outcome record and a decision.

    Each person is scored on a day in ``[start, start + days)``; outcomes as
    :func:`simulate_outcomes`, decisions as :func:`simulate_decisions`.
    """
    rng = np.random.default_rng([seed, 14])
    n = len(cohort)
    refs = cohort[ID_FIELD].astype("string").to_numpy()
    day = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days, n), unit="D")
    served_at = (day + pd.to_timedelta(rng.integers(8 * 3600, 18 * 3600, n), unit="s")).tz_localize(
        "UTC"
    )
    request_ids = np.char.add("req-", np.arange(n).astype("U8"))
    served = pd.DataFrame({"request_id": request_ids, ID_FIELD: refs, "time": served_at})
    outcomes = simulate_outcomes(cohort, day, rng, follow_up_days=follow_up_days)
    return DeploymentRecords(
        served=served,
        outcomes=outcomes,
        decisions=simulate_decisions(served, bands, rng, override_rate=override_rate),
    )
