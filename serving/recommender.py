"""Recommend rehabilitation pathways for validated assessments with a loaded pathway model.

The registered ``desist-pathways`` model is a
:class:`models.pathways.PathwayEffectModel`. For each person it estimates,
per programme, the absolute reduction in 12-month re-offending probability
from a referral to that programme alone, with a confidence interval; a
programme is recommended only when the person is eligible, people like them
were sometimes but not always referred (overlap), and the benefit is
clearly above zero. The answer lists the recommended programmes, largest
reduction first, with the needs items behind each, and says for every other
programme why it is not recommended. Beside them stands the one programme
the served policy offers (:func:`models.pathway_policy.served_choice` with
the model's gate and margin: the policy the benchmark measures) and the
person's figures (:func:`models.pathway_policy.person_figures`): their risk
without a referral, and with each programme. The practitioner decides.

Up to :data:`FOREST_ROWS` people, the estimates come from the model's boosters
flattened once at load (:mod:`models.pathway_forest`) and the people's
assessments read straight from the request's objects: one person then takes
well under a millisecond instead of ~1,000 scikit-learn tree calls and a
pandas table. Larger batches take scikit-learn's own compiled walk, which
wins there. Both give the same answers (the forest's sums are scikit-learn's,
bit for bit; a test holds them equal).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import pandas as pd
from pydantic import BaseModel

from data.schema import ASSESSMENT_FIELDS, PRINCES_TRUST_AGE_RANGE
from models.contract.errors import ModelLoadError
from models.encoding import to_model_input
from models.pathway_estimates import Recommendation, recommendations_from_needs
from models.pathway_forest import PathwayForest, compile_forest
from models.pathway_policy import NO_PROGRAMME, PersonFigures, person_figures, served_choice
from models.pathways import PROGRAMME_NEEDS, PathwayEffectModel, PathwayEstimates, recommendations
from serving.logs import get_logger
from serving.schemas import OfferBasis

log = get_logger("serving.recommender")

_SERVABLE = frozenset(spec.name for spec in ASSESSMENT_FIELDS)
#: Every assessment field but the identifier: what the effect model and the needs lookup read.
_INPUT_FIELDS: tuple[str, ...] = tuple(spec.name for spec in ASSESSMENT_FIELDS[1:])
_INPUT_SET: set[str] = set(_INPUT_FIELDS)  # pydantic wants a set, not a frozenset

#: Most people whose estimates come from the flattened forest: its array walk
#: grows with the rows, scikit-learn's per-tree calls hardly do, and they cross
#: near 100 people (13 ms against 19 ms on this machine's 21-feature model).
FOREST_ROWS = 64

NOT_ELIGIBLE = "not_eligible"
OUTSIDE_EVIDENCE = "outside_evidence"
NOT_CLEARLY_BENEFICIAL = "not_clearly_beneficial"

#: Why a programme is not recommended, as the API explains it.
REASONS: dict[str, str] = {
    NOT_ELIGIBLE: "not open to this person ({programme} takes ages {low} to {high})",
    OUTSIDE_EVIDENCE: (
        "people like this were almost never, or almost always, referred to it: "
        "the data cannot say what it would do for them"
    ),
    NOT_CLEARLY_BENEFICIAL: "its estimated benefit for people like this is not clearly above zero",
}


class RecommendedItem(TypedDict):
    """One recommended programme."""

    programme: str
    estimated_reduction: float
    interval_low: float
    interval_high: float
    person_interval_low: float
    person_interval_high: float
    risk_with: float
    needs: list[str]


class NotRecommendedItem(TypedDict):
    """A programme left out, and why."""

    programme: str
    reason: str
    explanation: str


class PersonRecommendation(TypedDict):
    """One person's ranked recommendations, as the API returns them."""

    subject_ref: str
    risk_without: float
    offered_programme: str | None
    offered_basis: OfferBasis | None
    risk_with_offered: float | None
    recommended: list[RecommendedItem]
    not_recommended: list[NotRecommendedItem]


class Recommender:
    """A fitted pathway-effect model ready to answer requests.

    Parameters
    ----------
    model
        A fitted :class:`models.pathways.PathwayEffectModel`.
    flatten
        Compile the model's boosters for batches of up to :data:`FOREST_ROWS`
        people (the service always does); ``False`` keeps scikit-learn's own
        walk for every batch, the reference the forest is compared with.

    Raises
    ------
    ModelLoadError
        If the model is of another kind, unfitted, or needs a field a
        request cannot carry.
    """

    def __init__(self, model: PathwayEffectModel, flatten: bool = True) -> None:
        fitted = all(hasattr(model, name) for name in ("effect_models_", "outcome_models_"))
        if not isinstance(model, PathwayEffectModel) or not fitted:
            raise ModelLoadError(f"expected a fitted pathway model, got {type(model).__name__}")
        unservable = [name for name in model.features if name not in _SERVABLE]
        if unservable:
            raise ModelLoadError(f"the model needs fields a request cannot carry: {unservable}")
        self.model = model
        self.features: tuple[str, ...] = tuple(model.features)
        # What depends only on the fitted model is worked out once, here, and
        # never saved with it: each encoded column's field and category codes.
        categories = model.encoder_.categories_
        self._columns: tuple[tuple[str, dict[str, float] | None], ...] = tuple(
            (name, _codes(categories[name]) if name in categories else None)
            for name in model.encoder_.features_
        )
        self._forest: PathwayForest | None = None
        # A booster the walk cannot read (TypeError) leaves scikit-learn's walk to answer.
        with contextlib.suppress(TypeError):
            self._forest = compile_forest(model) if flatten else None

    @property
    def flattened(self) -> bool:
        """Whether batches of up to :data:`FOREST_ROWS` people go through the flattened forest."""
        return self._forest is not None

    def frame(self, assessments: Sequence[BaseModel]) -> pd.DataFrame:
        """Return validated assessments as the model's input table (missing: NaN / None)."""
        records = [item.model_dump(include=_INPUT_SET) for item in assessments]
        table = pd.DataFrame.from_records(records, columns=list(_INPUT_FIELDS))
        return to_model_input(table, _INPUT_FIELDS)

    def warm_up(self, assessments: Sequence[BaseModel]) -> None:
        """Recommend for ``assessments`` by both paths before the version serves anyone.

        Scikit-learn's walk (batches above :data:`FOREST_ROWS`) pays its
        one-off first-call costs here, and the flattened forest's answer is
        checked against it: if they differ (a booster the compiler misread),
        the forest is dropped and scikit-learn answers every batch.

        Raises
        ------
        ValueError, KeyError, TypeError
            If the model cannot recommend for ``assessments``.
        """
        served = self.recommend(assessments)
        if self._forest is None or len(assessments) > FOREST_ROWS:
            return  # scikit-learn's walk answered: nothing to compare
        general = self._answers(*self._general(assessments), assessments)
        if not _agree(served, general):
            log.warning("the flattened pathway forest disagrees with scikit-learn: not used")
            self._forest = None

    def recommend(self, assessments: Sequence[BaseModel]) -> list[PersonRecommendation]:
        """Return each person's recommendations, in request order."""
        if self._forest is not None and len(assessments) <= FOREST_ROWS:
            found = self._walked(self._forest, assessments)
        else:
            found = self._general(assessments)
        return self._answers(*found, assessments)

    def offers(self, estimates: PathwayEstimates) -> tuple[np.ndarray, list[OfferBasis | None]]:
        """Return the served policy's programme per person and the basis of each offer.

        :func:`~models.pathway_policy.served_choice` with the model's default
        programme, switch margin and gate; a model saved before those existed
        offers only confident personal picks (no default, no margin, gated).
        """
        default = int(getattr(self.model, "default_programme_", NO_PROGRAMME))
        choice = served_choice(
            estimates,
            default,
            float(getattr(self.model, "switch_margin_", 0.0)),
            bool(getattr(self.model, "gate_", True)),
        )
        picks = zip(choice.programme.tolist(), choice.confident.tolist(), strict=True)
        return choice.programme, [_basis(j, confident, default) for j, confident in picks]

    def _general(
        self, assessments: Sequence[BaseModel]
    ) -> tuple[PathwayEstimates, list[list[Recommendation]], np.ndarray]:
        """Return the estimates, ranked picks and risks without a referral, through scikit-learn."""
        table = self.frame(assessments)
        estimates, risk = self.model.estimate_with_risk(table)
        return estimates, recommendations(estimates, table), risk

    def _answers(
        self,
        estimates: PathwayEstimates,
        ranked: list[list[Recommendation]],
        risk_without: np.ndarray,
        assessments: Sequence[BaseModel],
    ) -> list[PersonRecommendation]:
        """Return the API's answers: the offer, each person's picks, every other one's reason."""
        figures = person_figures(estimates, risk_without)
        offered, basis = self.offers(estimates)
        out: list[PersonRecommendation] = []
        for row, (item, picks) in enumerate(zip(assessments, ranked, strict=True)):
            chosen = {pick.programme for pick in picks}
            offer = int(offered[row])
            out.append(
                {
                    "subject_ref": item.subject_ref,  # type: ignore[attr-defined]
                    "risk_without": float(risk_without[row]),
                    "offered_programme": None if offer < 0 else estimates.programmes[offer],
                    "offered_basis": basis[row],
                    "risk_with_offered": None
                    if offer < 0
                    else float(figures.risk_with[row, offer]),
                    "recommended": [
                        _recommended(pick, figures, row, estimates.programmes.index(pick.programme))
                        for pick in picks
                    ],
                    "not_recommended": [
                        _left_out(estimates, row, j)
                        for j, programme in enumerate(estimates.programmes)
                        if programme not in chosen
                    ],
                }
            )
        return out

    def _walked(
        self, forest: PathwayForest, assessments: Sequence[BaseModel]
    ) -> tuple[PathwayEstimates, list[list[Recommendation]], np.ndarray]:
        """Return the estimates and ranked picks of a few people through the flattened forest.

        The assessments are read as :meth:`frame` and the model's encoder
        would read them (missing: ``NaN``; a category: its schema code), without
        building their table.
        """
        nan = math.nan
        x = np.array(
            [
                [
                    nan
                    if (value := getattr(item, name)) is None
                    else (float(value) if codes is None else codes.get(value, nan))
                    for name, codes in self._columns
                ]
                for item in assessments
            ],
            dtype=np.float64,
        ).reshape(len(assessments), len(self._columns))
        ages = _fields(assessments, ("age",), nan)[:, 0]
        needs = {p: _fields(assessments, items, 0.0) for p, items in PROGRAMME_NEEDS.items()}
        walked = forest.predict(x)
        estimates = self.model.estimates_from(
            walked.relative, walked.baseline, walked.propensity, ages
        )
        return estimates, recommendations_from_needs(estimates, needs), walked.baseline


def _basis(programme: int, confident: bool, default: int) -> OfferBasis | None:
    """Return why ``programme`` is offered (``None``: nothing is)."""
    if programme < 0:
        return None
    if confident:
        return "confident_personal_pick"
    return "default_programme" if programme == default else "personal_pick"


def _recommended(pick: Recommendation, figures: PersonFigures, row: int, j: int) -> RecommendedItem:
    """Return one recommended programme as the API gives it, with the person's own figures."""
    return {
        "programme": pick.programme,
        "estimated_reduction": pick.estimated_reduction,
        "interval_low": pick.interval[0],
        "interval_high": pick.interval[1],
        "person_interval_low": float(figures.low[row, j]),
        "person_interval_high": float(figures.high[row, j]),
        "risk_with": float(figures.risk_with[row, j]),
        "needs": list(pick.needs),
    }


def _agree(one: list[PersonRecommendation], other: list[PersonRecommendation]) -> bool:
    """Whether two answers name the same programmes, needs, reasons and offer, and figures."""
    if len(one) != len(other):
        return False
    for mine, theirs in zip(one, other, strict=True):
        if _named(mine) != _named(theirs) or not _close(_figures(mine), _figures(theirs)):
            return False
    return True


def _named(person: PersonRecommendation) -> list[object]:
    """Return what two answers of one person must name alike."""
    return [
        person["subject_ref"],
        person["offered_programme"],
        person["offered_basis"],
        person["not_recommended"],
        [(item["programme"], item["needs"]) for item in person["recommended"]],
    ]


def _figures(person: PersonRecommendation) -> list[float]:
    """Return every figure of one person's answer, in a fixed order."""
    out = [person["risk_without"], person["risk_with_offered"] or 0.0]
    for item in person["recommended"]:
        out += [
            item["estimated_reduction"],
            item["interval_low"],
            item["interval_high"],
            item["person_interval_low"],
            item["person_interval_high"],
            item["risk_with"],
        ]
    return out


def _close(one: list[float], other: list[float]) -> bool:
    """Whether two lists of figures agree to 1e-12 (the forest's sums are scikit-learn's)."""
    return len(one) == len(other) and all(
        math.isclose(x, y, rel_tol=0, abs_tol=1e-12) for x, y in zip(one, other, strict=True)
    )


def _codes(categories: list[str]) -> dict[str, float]:
    """Return each category's code (its position), as the encoder numbers them."""
    return {category: float(code) for code, category in enumerate(categories)}


def _fields(assessments: Sequence[BaseModel], names: tuple[str, ...], missing: float) -> np.ndarray:
    """Return fields ``names`` of each assessment as floats, ``missing`` where absent."""
    return np.array(
        [
            [missing if (value := getattr(item, name)) is None else float(value) for name in names]
            for item in assessments
        ],
        dtype=np.float64,
    ).reshape(len(assessments), len(names))


def _left_out(estimates: PathwayEstimates, row: int, j: int) -> NotRecommendedItem:
    """Say why programme ``j`` is not recommended for person ``row`` (first reason that holds)."""
    programme = estimates.programmes[j]
    if not bool(estimates.eligible[row, j]):
        reason = NOT_ELIGIBLE
    elif not bool(estimates.in_overlap[row, j]):
        reason = OUTSIDE_EVIDENCE
    else:
        reason = NOT_CLEARLY_BENEFICIAL
    low, high = PRINCES_TRUST_AGE_RANGE
    text = REASONS[reason].format(programme=programme, low=low, high=high)
    return {"programme": programme, "reason": reason, "explanation": text}


def audit_summary(person: PersonRecommendation) -> str:
    """Return the recommended programmes as ``programme:reduction``, comma-separated, and the offer.

    The offer follows as ``;offered=programme`` (``none`` when nothing is offered).
    """
    ranked = ",".join(
        f"{item['programme']}:{item['estimated_reduction']:.4f}" for item in person["recommended"]
    )
    return f"{ranked};offered={person['offered_programme'] or 'none'}"
