"""Score validated assessments with a loaded risk model, without a DataFrame per request.

The registered model is a :class:`models.calibration.ScoreCalibratedClassifier`
around a pipeline of :class:`models.encoding.AssessmentEncoder` (``encode``)
and a scorecard, gradient boosting or their blend (``model``). Going through
``predict_proba`` would build a pandas DataFrame and run the encoder for
every request; the scorer instead builds the encoder's float matrix straight
from the validated request objects (category -> its schema code, missing ->
``NaN``, exactly as the encoder does) and calls the final estimator and the
calibration map on it. The probabilities are the model's own:
``predict_proba`` on the same rows gives the same numbers (bit for bit for
the scorecard; for gradient boosting and the blend to float rounding, as
their scores are summed from the attributions; all tested).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, TypedDict

import numpy as np
from pydantic import BaseModel
from scipy.special import expit

from data.schema import ASSESSMENT_FIELDS
from models.bands import BAND_NAMES, RiskBands
from models.calibration import ScoreCalibratedClassifier
from models.contract.errors import ModelLoadError
from models.explain import FastExplainer, top_contributions
from serving.columnar import CheckedBatch

_SERVABLE = frozenset(spec.name for spec in ASSESSMENT_FIELDS)

#: Up to this many rows, probabilities, bands and reasons are picked in plain Python
#: (:meth:`Scorer._few_rows`); from here on numpy's per-call cost is spread over enough rows.
_FEW_ROWS = 8


#: Probabilities, bands, and each row's reasons: its columns and their contributions.
Picks = tuple[list[float], list[str], list[list[int]], list[list[float]]]


class ReasonItem(TypedDict):
    """One feature's part in one score, as the API returns it."""

    feature: str
    value: int | float | str | None
    contribution: float
    direction: str


class Score(TypedDict):
    """One assessment's calibrated probability, band and top reasons, as the API returns it.

    Plain dictionaries rather than objects: a batch of 1,000 makes 4,000 of
    them, and they go straight to the JSON encoder.
    """

    subject_ref: str
    risk_probability: float
    risk_band: str
    reasons: list[ReasonItem]


class Scorer:
    """A fitted risk model made fast for single requests and batches alike.

    Parameters
    ----------
    model
        A fitted ``ScoreCalibratedClassifier`` whose ``estimator`` is a
        pipeline with ``encode`` and ``model`` steps.
    bands
        Cut-offs of the risk bands the model was registered with.
    top_reasons
        How many reasons to give per score.
    threads
        Threads that share the trees' walk of a large batch (from 400 rows on,
        8,192 when the leaves are looked up;
        :func:`models.tree_paths.tree_path_contributions`): the service's thread budget.

    Raises
    ------
    ModelLoadError
        If the model does not have the expected structure, or needs a field
        the request schema does not carry.
    """

    def __init__(
        self,
        model: ScoreCalibratedClassifier,
        bands: RiskBands,
        top_reasons: int = 3,
        threads: int = 1,
    ) -> None:
        try:
            explainer = FastExplainer(model, threads=threads)
        except TypeError as err:
            raise ModelLoadError(str(err)) from err
        unservable = [name for name in explainer.features if name not in _SERVABLE]
        if unservable:
            raise ModelLoadError(f"the model needs fields a request cannot carry: {unservable}")
        self.model = model
        self.bands = bands
        self.top_reasons = top_reasons
        self.features: tuple[str, ...] = explainer.features
        self.method = explainer.method
        # Trees compiled once per loaded model: attribution then costs a few array
        # operations, and the score is the attributions' sum (one walk, not two).
        self._explainer = explainer
        self._calibrate = _calibration_map(model)
        encoder = explainer.encoder
        # Columns of numbers, and of categories with each category's schema code (as the
        # encoder does).
        self._numbers = [
            j for j, name in enumerate(self.features) if name not in encoder.categories_
        ]
        self._categories: list[tuple[int, dict[str, float]]] = [
            (j, {c: float(code) for code, c in enumerate(encoder.categories_[name])})
            for j, name in enumerate(self.features)
            if name in encoder.categories_
        ]

    def matrix(self, assessments: Sequence[BaseModel]) -> np.ndarray:
        """Return the encoder's float matrix for validated assessments."""
        return self._matrix([vars(item) for item in assessments])

    def _matrix(self, values: Sequence[dict[str, Any]]) -> np.ndarray:
        """Return the encoder's float matrix of assessments' field values (their ``__dict__``).

        Rows are read with one ``itemgetter`` call each and converted by numpy
        in one step (``None`` becomes ``NaN``): attribute lookups one value at a
        time were a tenth of a 1,000-assessment request.
        """
        out = np.empty((len(values), len(self.features)), dtype=np.float64)
        if not values:
            return out
        if self._numbers:
            get = itemgetter(*(self.features[j] for j in self._numbers))
            block = np.array([get(row) for row in values], dtype=np.float64)
            out[:, self._numbers] = block.reshape(len(values), len(self._numbers))
        for j, codes in self._categories:
            name = self.features[j]
            # An unknown or missing category is NaN, as in AssessmentEncoder.transform
            # (``codes.get`` gives None, which numpy reads as NaN).
            out[:, j] = np.array([codes.get(row[name]) for row in values], dtype=np.float64)
        return out

    def score(self, assessments: Sequence[BaseModel]) -> list[Score]:
        """Score validated assessments, in order.

        Parameters
        ----------
        assessments
            Instances of :func:`data.schema.make_assessment_model`.
        """
        # pydantic keeps a model's field values in its __dict__: read as dicts from here on.
        values = [vars(item) for item in assessments]
        picks = self._picks(self._matrix(values))
        return scores_from_picks(values, self.features, *picks)

    def picks(self, batch: CheckedBatch) -> Picks:
        """Return the probabilities, bands and reasons of a checked batch, in order.

        The same numbers as :meth:`score`, from the batch's columns: its numeric
        columns are already floats (:class:`serving.columnar.CheckedBatch`).
        Reasons are given as each row's columns (positions in :attr:`features`)
        and their contributions.
        """
        n = len(batch.rows)
        X = np.empty((n, len(self.features)), dtype=np.float64)
        for j in self._numbers:
            name = self.features[j]
            column = batch.numbers.get(name)
            X[:, j] = column if column is not None else np.array(batch.columns[name], np.float64)
        for j, codes in self._categories:
            # As in _matrix: an unknown or missing category is NaN.
            X[:, j] = np.array(list(map(codes.get, batch.columns[self.features[j]])), np.float64)
        return self._picks(X)

    def _picks(self, X: np.ndarray) -> Picks:
        """Return the probabilities, bands and reasons (columns, amounts) of the rows of ``X``."""
        logit, contributions = self._explainer.logit_and_contributions(X)
        limit = min(self.top_reasons, len(self.features))
        # Plain Python values from here on: indexing numpy scalars one by one is slow.
        if len(X) <= _FEW_ROWS:
            return self._few_rows(X, logit, contributions, limit)
        probability = self.model.calibrate_scores(logit)
        bands = self.bands.band_names(probability).tolist()
        # A field not assessed is never a reason (models.explain.top_contributions).
        top, top_amounts = top_contributions(contributions, limit, ~np.isnan(X))
        return probability.tolist(), bands, top.tolist(), top_amounts.tolist()

    def _few_rows(
        self, X: np.ndarray, logit: np.ndarray, contributions: np.ndarray, limit: int
    ) -> Picks:
        """Return probabilities, bands and top reasons (columns, amounts) of a few rows.

        The same numbers as the array path of :meth:`score`, one row at a time in
        plain Python: for a single assessment, the dozen numpy calls of
        ``calibrate_scores`` (with scikit-learn's fitted check), ``band_names``
        and ``top_contributions`` cost more than its tree walk. Probabilities
        come from the calibration map itself (:attr:`_calibrate`); a band is
        ``searchsorted(cutoffs, p, side="right")``, which ``bisect_right`` is;
        reasons are the largest contributions by size, ties in column order
        (``heapq.nlargest`` is a stable sort's first ``limit``), a field not
        assessed after every assessed one. Rows with a NaN contribution take
        the array path (NaN orders differently there).
        """
        probabilities = self._calibrate(logit).tolist()
        cutoffs = self.bands.cutoffs
        bands = [BAND_NAMES[bisect_right(cutoffs, p)] for p in probabilities]
        amounts_by_row = contributions.tolist()
        if any(math.isnan(c) for row in amounts_by_row for c in row):
            top, top_amounts = top_contributions(contributions, limit, ~np.isnan(X))
            return probabilities, bands, top.tolist(), top_amounts.tolist()
        order: list[list[int]] = []
        picked: list[list[float]] = []
        for amounts, cells in zip(amounts_by_row, X.tolist(), strict=True):
            size = [
                abs(c) if not math.isnan(x) else -1.0 for c, x in zip(amounts, cells, strict=True)
            ]
            best = heapq.nlargest(limit, range(len(size)), key=size.__getitem__)
            order.append(best)
            picked.append([amounts[j] for j in best])
        return probabilities, bands, order, picked


def scores_from_picks(
    values: Sequence[dict[str, Any]],
    features: Sequence[str],
    probabilities: list[float],
    bands: list[str],
    order: list[list[int]],
    picked: list[list[float]],
) -> list[Score]:
    """Return the scores with their reasons: rows' ``order`` columns and their ``picked`` amounts.

    A field not assessed (``None``) is never a reason. The reasons of every row
    are built in one flat pass and then cut into rows: a loop per row (or a
    comprehension per row, a function call each in Python 3.11) cost twice
    as much for 1,000 rows.
    """
    names = [features[j] for columns in order for j in columns]
    width = len(order[0]) if order else 0  # the same number of picks in every row
    sent = [row[features[j]] for row, columns in zip(values, order, strict=True) for j in columns]
    amounts = [c for row_amounts in picked for c in row_amounts]
    flat: list[ReasonItem] = [
        # The same rule as models.explain.Reason.direction.
        {"feature": f, "value": v, "contribution": c, "direction": "raises" if c > 0 else "lowers"}
        for f, v, c in zip(names, sent, amounts, strict=True)
    ]
    if width == 0:  # no reasons asked for (or no rows)
        reasons: list[list[ReasonItem]] = [[] for _ in values]
    elif None not in sent:
        reasons = [flat[start : start + width] for start in range(0, len(flat), width)]
    else:  # a field not assessed among the picks (fewer assessed fields than reasons)
        reasons = [
            [r for r in flat[start : start + width] if r["value"] is not None]
            for start in range(0, len(flat), width)
        ]
    return [
        {"subject_ref": row["subject_ref"], "risk_probability": p, "risk_band": band, "reasons": r}
        for row, p, band, r in zip(values, probabilities, bands, reasons, strict=True)
    ]


def _calibration_map(model: ScoreCalibratedClassifier) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``model.calibrate_scores`` without its per-call fitted check.

    The same arithmetic on the same fitted values (so the same bits; tested
    against ``calibrate_scores``): scikit-learn's ``check_is_fitted`` scans the
    model's attributes on every call, a tenth of a single assessment's scoring.
    The model is checked once, here.
    """
    model.calibrate_scores(np.zeros(1))  # raises if the model is not fitted
    if model.method == "sigmoid":
        slope, intercept = model.platt_

        def sigmoid(score: np.ndarray) -> np.ndarray:
            return np.asarray(expit(slope * score + intercept))

        return sigmoid
    knots, rates = model.knots_, model.rates_

    def interpolate(score: np.ndarray) -> np.ndarray:
        # Beyond the outermost bin centres the rate is held (no extrapolation).
        return np.asarray(np.interp(score, knots, rates))

    return interpolate
