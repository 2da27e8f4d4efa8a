"""The served pathway policy: the one programme each person is offered, and why.

One function decides for the benchmark and for a cohort alike (issue 17:
the policy benchmarked is the policy served):

- the person's *personal pick* is the programme with the largest estimate
  among those open to them (eligible and inside the evidence);
- it is offered when it is itself recommended with confidence (estimate
  above ``min_effect`` and its group's mean above zero at the family-wise
  level) and its estimate beats the default programme's by at least
  ``margin``;
- otherwise the person is offered the *default programme*, the best single
  programme chosen truth-free on the training rows
  (``PathwayEffectModel.default_programme_``), when it is open to them, else
  nothing (:data:`NO_PROGRAMME`).

The gate decides *whether* to personalise, not *which* programme: a person
whose top estimate is not confident falls back to the default, rather than
to their best confident programme, which may be a lesser one. At small
cohorts fewer groups are confident, so the policy shrinks towards the
default by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.schema import PROGRAMMES
from models.pathway_confidence import family_wise_z
from models.pathway_estimates import PathwayEstimates

#: The choice of a person who is offered no programme.
NO_PROGRAMME = -1


@dataclass(frozen=True, slots=True)
class ServedChoice:
    """Each person's offered programme and how it was reached.

    ``programme`` holds indices (:data:`NO_PROGRAMME` for none);
    ``confident`` is True where the offered programme is a personal pick
    recommended with confidence, False where it is the default programme
    (or nothing).
    """

    programme: np.ndarray
    confident: np.ndarray

    @property
    def offered(self) -> np.ndarray:
        """True where a programme is offered."""
        return self.programme >= 0


def served_choice(
    estimates: PathwayEstimates, default: int, margin: float = 0.0, gate: bool = True
) -> ServedChoice:
    """Return the served policy's choice for every person in ``estimates``.

    Parameters
    ----------
    estimates
        The model's estimates for the people.
    default
        The default programme's index (``PathwayEffectModel.default_programme_``),
        or :data:`NO_PROGRAMME` when no programme is clearly above zero.
    margin
        How much a personal pick's estimate must beat the default's by
        (``PathwayEffectModel.switch_margin_``; infinite: everyone gets the
        default).
    gate
        Whether a personal pick must be recommended with confidence
        (``PathwayEffectModel.gate_``).
    """
    programme, confident = choose(
        estimates.effect,
        estimates.eligible & estimates.in_overlap,
        estimates.recommended,
        default,
        margin,
        gate,
    )
    return ServedChoice(programme, confident)


def choose(
    effect: np.ndarray,
    open_to: np.ndarray,
    recommended: np.ndarray,
    default: int,
    margin: float,
    gate: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the offered programme per person and whether it is a confident personal pick.

    The rule of :func:`served_choice` on bare arrays, so that the model's
    truth-free selection (:func:`select_policy`) scores exactly the served
    rule.
    """
    rows = np.arange(open_to.shape[0])
    top = np.argmax(np.where(open_to, effect, -np.inf), axis=1)
    personal = open_to[rows, top] & (recommended[rows, top] if gate else effect[rows, top] > 0)
    if default < 0:
        return np.where(personal, top, NO_PROGRAMME), personal & recommended[rows, top]
    beats = effect[rows, top] - effect[:, default] >= margin
    personal &= beats | (top == default) | ~open_to[:, default]
    fallback = np.where(open_to[:, default], default, NO_PROGRAMME)
    return np.where(personal, top, fallback), personal & recommended[rows, top]


def best_single_programme(
    pseudo: np.ndarray, open_to: np.ndarray
) -> tuple[dict[str, float], dict[str, float], int]:
    """Return the value and floor of offering each programme to everyone, and the default.

    Issue 17's best single programme, read truth-free: a programme's value is
    the mean DR pseudo-outcome per person of the cohort (``pseudo``, shape
    ``(n, k)``; no value where it is not open to the person), its floor a
    family-wise one-sided 95% lower bound over the ``k`` programmes. The
    default is the largest value among programmes whose floor is above zero
    (:data:`NO_PROGRAMME` if none is).
    """
    n = pseudo.shape[0]
    z = family_wise_z(len(PROGRAMMES))
    values: dict[str, float] = {}
    floors: dict[str, float] = {}
    for j, programme in enumerate(PROGRAMMES):
        per_person = np.where(open_to[:, j], pseudo[:, j], 0.0)
        error = per_person.std(ddof=1) / np.sqrt(n)
        values[programme] = float(per_person.mean())
        floors[programme] = float(per_person.mean() - z * error)
    confident = [p for p in PROGRAMMES if floors[p] > 0]
    default = (
        PROGRAMMES.index(max(confident, key=values.__getitem__)) if confident else NO_PROGRAMME
    )
    return values, floors, default


#: Candidate switch margins of the truth-free selection (absolute reduction).
MARGINS: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.04, float("inf"))


#: A candidate rule replaces "the default programme" only when its out-of-fold
#: gain over it is above this many of the gain's own standard errors: a
#: one-sided test at 5%. One standard error (16%) let a switch worth -0.63 of
#: the oracle's gain through at 7,315 people (harder world, seed 3) once the
#: final stage preferred the absolute scale; out-of-fold values overrate a
#: personal rule most at small cohorts.
SWITCH_STANDARD_ERRORS = 1.645


def select_policy(
    effect: np.ndarray,
    open_to: np.ndarray,
    recommended: np.ndarray,
    pseudo: np.ndarray,
    default: int,
) -> tuple[bool, float, dict[str, float]]:
    """Choose the gate and switch margin by a doubly robust policy value, without the truth.

    ``effect`` and ``recommended`` are the training people's *out-of-fold*
    estimates and confidence flags (from models that did not learn from
    them), ``pseudo`` their cross-fitted DR pseudo-outcomes: the mean of a
    policy's chosen pseudo-outcomes estimates its value. The reference is
    the most cautious rule, the gate on and an infinite margin (the default
    programme for everyone it is open to): a candidate is eligible only when
    its mean gain over the reference, person by person, is above
    :data:`SWITCH_STANDARD_ERRORS` of that gain's standard error, and the
    eligible candidate of largest value is chosen. Picking the best of a dozen
    noisy values overrates the winner; the rule keeps a small cohort on the
    default unless personalising is clearly worth it (issue 17, item 4).
    Without a default programme the gate is kept. Returns the gate, the
    margin and every candidate's value (``gate/margin``).
    """
    _, gate, margin, values = select_learner({"": (effect, recommended)}, open_to, pseudo, default)
    return gate, margin, values


def rule_name(gate: bool, margin: float) -> str:
    """Return a served rule's name in ``selection_`` (``gate/0.01``, ``no_gate/inf``)."""
    return f"{'gate' if gate else 'no_gate'}/{margin}"


def select_learner(
    candidates: dict[str, tuple[np.ndarray, np.ndarray]],
    open_to: np.ndarray,
    pseudo: np.ndarray,
    default: int,
) -> tuple[str, bool, float, dict[str, float]]:
    """Choose the learner, gate and switch margin by out-of-fold DR policy value.

    :func:`select_policy` over several estimates at once: ``candidates``
    maps a learner's name to its out-of-fold ``(effect, recommended)``, and
    every learner's rules are scored against the same reference (the default
    programme for everyone: it does not depend on the estimates) with the
    same test. When no rule passes it, the first learner is kept with the
    reference rule: without evidence the listed order decides. Value names
    are ``learner:gate/margin`` (``gate/margin`` for a nameless learner).
    """
    first = next(iter(candidates))
    rows = np.arange(pseudo.shape[0])
    values: dict[str, float] = {}

    def gains(effect: np.ndarray, recommended: np.ndarray, gate: bool, margin: float) -> np.ndarray:
        programme, _ = choose(effect, open_to, recommended, default, margin, gate)
        return np.where(programme >= 0, pseudo[rows, np.maximum(programme, 0)], 0.0)

    reference = gains(*candidates[first], True, float("inf"))
    best = (first, True, float("inf"), float(reference.mean()))
    for learner, (effect, recommended) in candidates.items():
        # With no programme clearly above zero there is no default to fall
        # back on, and an ungated pick would be noise: the gate stays on.
        for gate in (True, False) if default >= 0 else (True,):
            for margin in MARGINS:
                gain = gains(effect, recommended, gate, margin)
                value = float(gain.mean())
                name = rule_name(gate, margin)
                values[f"{learner}:{name}" if learner else name] = value
                over = gain - reference
                error = float(over.std(ddof=1) / np.sqrt(over.size)) if over.size > 1 else np.inf
                if value > best[3] and over.mean() > SWITCH_STANDARD_ERRORS * error:
                    best = (learner, gate, margin, value)
    return best[0], best[1], best[2], values


@dataclass(frozen=True, slots=True)
class PersonFigures:
    """What a practitioner reads for each person and programme (issue 17, item 6).

    ``risk_without`` is the person's estimated 12-month re-offending
    probability with no referral, shape ``(n,)``; ``risk_with`` that with a
    referral to each programme alone, ``(n, k)``. ``low`` and ``high`` are
    the person's interval: their own estimate give or take the half-width of
    the 95% interval of the group mean their estimate was checked against,
    so it always contains the estimate; it says how precisely people like
    them are measured, not how far their own effect may differ from it.
    """

    risk_without: np.ndarray
    risk_with: np.ndarray
    low: np.ndarray
    high: np.ndarray


def person_figures(estimates: PathwayEstimates, risk_without: np.ndarray) -> PersonFigures:
    """Return each person's risk without and with each programme, and their interval.

    Parameters
    ----------
    estimates
        The model's estimates for the people.
    risk_without
        The model's risk with no referral (``PathwayEffectModel.baseline_risk``).
    """
    half = np.nan_to_num((estimates.interval_high - estimates.interval_low) / 2, nan=np.inf)
    risk_with = np.clip(risk_without[:, None] - estimates.effect, 0.0, 1.0)
    return PersonFigures(
        risk_without=risk_without,
        risk_with=risk_with,
        low=estimates.effect - half,
        high=estimates.effect + half,
    )
