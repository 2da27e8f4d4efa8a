"""Input drift against the training data: binned reference, PSI and tests with known false alarms.

:func:`make_training_reference` bins each feature of the training data (and,
optionally, the model's test-split probabilities) once, at registration; the
reference holds only bin edges and counts, never a person's row, so it can be
stored with the model version as JSON.

:func:`drift_table` compares a later population with it, feature by feature:
the population stability index (PSI, the usual effect size:
``sum (q - p) ln(q / p)`` over bins, "not assessed" its own bin) and the
Pearson chi-square test of homogeneity of the two count vectors, whose
p-value says how often sampling noise alone gives a difference this large
(under no change, ``n_eff * PSI`` is itself close to chi-square with
``bins - 1`` degrees of freedom, ``n_eff = 1 / (1/n + 1/n_ref)``, so a fixed
PSI cut-off such as 0.1 means very different things at 500 and at 500,000
people). Missingness is also tested on its own (two proportions).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

#: Format of the stored reference; bumped when its meaning changes.
REFERENCE_FORMAT = 1
#: Numeric features with at most this many distinct values are binned by value.
MAX_DISCRETE_LEVELS = 12
#: Bins whose expected count (in the smaller sample) is below this are pooled
#: before the chi-square test, whose tail is too light for sparser cells.
MIN_EXPECTED = 5.0
#: Pseudo-count added to every bin for the PSI, so an empty bin gives a finite log.
PSI_PSEUDO_COUNT = 0.5
SCORE = "risk_probability"
OTHER = "(other)"
MISSING = "(not assessed)"


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype
    )


def _as_numbers(levels: tuple[str, ...]) -> np.ndarray | None:
    """Return the levels as floats when every one is a number, else None."""
    try:
        return np.array([float(level) for level in levels], dtype=np.float64)
    except ValueError:
        return None


@dataclass(frozen=True)
class BinnedFeature:
    """One feature's training distribution, binned.

    Attributes
    ----------
    name
        The column.
    edges
        Interior bin edges of a numeric feature (bin ``i`` holds values in
        ``[edges[i-1], edges[i])``); empty for a feature binned by value.
    levels
        The values of a feature binned by value, as text; then an
        ``(other)`` bin catches values training never saw.
    counts
        Training people per bin, in bin order, then ``(not assessed)``.
    """

    name: str
    edges: tuple[float, ...]
    levels: tuple[str, ...]
    counts: tuple[int, ...]

    @property
    def labels(self) -> list[str]:
        """Return the bin names, in bin order (the last is ``(not assessed)``)."""
        if self.levels:
            return [*self.levels, OTHER, MISSING]
        bounds = ["-inf", *(f"{e:g}" for e in self.edges), "inf"]
        return [*(f"[{a}, {b})" for a, b in pairwise(bounds)), MISSING]

    @property
    def n(self) -> int:
        """Return the number of training people."""
        return int(sum(self.counts))

    def count(self, values: pd.Series) -> np.ndarray:
        """Return how many of ``values`` fall in each of this feature's bins."""
        missing = values.isna().to_numpy()
        n_bins = len(self.counts)
        other = len(self.levels)
        numeric_levels = _as_numbers(self.levels)
        if self.levels and numeric_levels is not None and _is_number(values):
            # Need levels and the like: matched as numbers, so 1, 1.0 and "1" agree.
            number = pd.to_numeric(values, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            missing = np.isnan(number)
            order = np.argsort(numeric_levels)
            at = np.minimum(np.searchsorted(numeric_levels[order], number), other - 1)
            found = numeric_levels[order][at] == number
            index = np.where(found, order[at], other)
        elif self.levels:
            text = values.astype("string").to_numpy(dtype=object, na_value=None)
            lookup = {level: i for i, level in enumerate(self.levels)}
            index = np.fromiter(
                (lookup.get(v, other) for v in text), dtype=np.int64, count=len(text)
            )
        else:
            number = pd.to_numeric(values, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            missing = np.isnan(number)
            index = np.searchsorted(np.asarray(self.edges), number, side="right")
        index[missing] = n_bins - 1
        return np.bincount(index, minlength=n_bins)


@dataclass(frozen=True)
class DecileCalibration:
    """Calibration of the test split in bins cut at its score deciles.

    Bin ``b`` holds scores in ``[edges[b-1], edges[b])``; per bin, ``n``
    people, ``excess`` the sum of ``p - y`` and ``variance`` the sum of
    ``p (1 - p)`` (the variance of that sum for a calibrated score).
    """

    edges: tuple[float, ...]
    n: tuple[int, ...]
    excess: tuple[float, ...]
    variance: tuple[float, ...]

    @classmethod
    def of(cls, probability: np.ndarray, outcome: np.ndarray, bins: int = 10) -> DecileCalibration:
        """Cut ``probability`` at its deciles and sum each bin."""
        edges = np.unique(np.quantile(probability, np.linspace(0, 1, bins + 1)[1:-1]))
        sums = cls.sums(edges, probability, outcome)
        return cls(tuple(edges.tolist()), *(tuple(v.tolist()) for v in sums))

    @staticmethod
    def sums(
        edges: np.ndarray | tuple[float, ...], probability: np.ndarray, outcome: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return per bin of ``edges``: people, sum of ``p - y``, sum of ``p (1 - p)``."""
        index = np.searchsorted(np.asarray(edges), probability, side="right")
        size = len(edges) + 1
        n = np.bincount(index, minlength=size)
        excess = np.bincount(index, weights=probability - outcome, minlength=size)
        variance = np.bincount(index, weights=probability * (1 - probability), minlength=size)
        return n, excess, variance


@dataclass(frozen=True)
class TrainingReference:
    """Binned training distributions, and the test-split figures monitoring compares with.

    Attributes
    ----------
    features
        One :class:`BinnedFeature` per feature.
    score
        The model's test-split probabilities, binned; None when not given.
    roc_auc, n_positive, n_negative
        The test-split AUC and its outcome counts (for the AUC's standard
        error); NaN and 0 when not given.
    calibration
        The test split's calibration by score decile, to judge a later
        change against (:class:`DecileCalibration`); None without outcomes.
    """

    features: tuple[BinnedFeature, ...]
    score: BinnedFeature | None = None
    roc_auc: float = math.nan
    n_positive: int = 0
    n_negative: int = 0
    calibration: DecileCalibration | None = None
    format: int = field(default=REFERENCE_FORMAT)

    def to_json(self) -> str:
        """Return the reference as JSON, to store with a model version."""
        return json.dumps(asdict(self), allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> TrainingReference:
        """Read a reference written by :meth:`to_json`.

        Raises
        ------
        ValueError
            If the text is not a reference of this format.
        """
        raw: dict[str, Any] = json.loads(text)
        if raw.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"training reference format {raw.get('format')!r} is not supported")

        def binned(item: dict[str, Any]) -> BinnedFeature:
            return BinnedFeature(
                name=item["name"],
                edges=tuple(float(e) for e in item["edges"]),
                levels=tuple(str(v) for v in item["levels"]),
                counts=tuple(int(c) for c in item["counts"]),
            )

        return cls(
            features=tuple(binned(f) for f in raw["features"]),
            score=None if raw.get("score") is None else binned(raw["score"]),
            roc_auc=float(raw["roc_auc"]),
            n_positive=int(raw["n_positive"]),
            n_negative=int(raw["n_negative"]),
            calibration=None
            if raw.get("calibration") is None
            else DecileCalibration(**{k: tuple(v) for k, v in raw["calibration"].items()}),
        )


def bin_feature(name: str, values: pd.Series, bins: int = 10) -> BinnedFeature:
    """Bin one training column: by value when it has few values, else by quantile.

    Quantile edges give bins of (nearly) equal training mass, so each bin's
    share is estimated as well as any other's; repeated edges (many people
    on one value) are merged.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    present = values.dropna()
    numeric = _is_number(values)
    distinct = pd.unique(present)
    if not numeric or len(distinct) <= MAX_DISCRETE_LEVELS:
        if numeric:
            ordered = [f"{v:g}" for v in sorted(float(v) for v in distinct)]
            text = values
        else:
            categories = (
                values.cat.categories
                if isinstance(values.dtype, pd.CategoricalDtype)
                else sorted(distinct, key=str)
            )
            seen = {str(v) for v in distinct}
            ordered = [str(c) for c in categories if str(c) in seen]
            text = values.astype("string")
        shell = BinnedFeature(name, (), tuple(ordered), (0,) * (len(ordered) + 2))
        return BinnedFeature(name, (), tuple(ordered), tuple(shell.count(text).tolist()))
    number = present.to_numpy(dtype=np.float64)
    edges = np.unique(np.quantile(number, np.linspace(0, 1, bins + 1)[1:-1]))
    shell = BinnedFeature(name, tuple(edges.tolist()), (), (0,) * (len(edges) + 2))
    return BinnedFeature(name, shell.edges, (), tuple(shell.count(values).tolist()))


def make_training_reference(
    frame: pd.DataFrame,
    features: tuple[str, ...] | list[str],
    *,
    probability: np.ndarray | None = None,
    outcome: np.ndarray | None = None,
    bins: int = 10,
) -> TrainingReference:
    """Bin the training data (and test-split scores) for later drift checks.

    Parameters
    ----------
    frame
        The rows the model was trained on (schema columns).
    features
        The model's features.
    probability
        The model's probabilities on its test split, for the score-shift
        check; with ``outcome``, also the reference AUC.
    outcome
        The test split's observed outcomes, aligned with ``probability``.
    bins
        Quantile bins per numeric feature.
    """
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ValueError(f"features absent from the training frame: {missing}")
    binned = tuple(bin_feature(name, frame[name], bins) for name in features)
    score = None
    auc, n_pos, n_neg = math.nan, 0, 0
    calibration = None
    if probability is not None:
        score = bin_feature(SCORE, pd.Series(np.asarray(probability, dtype=np.float64)), bins)
        if outcome is not None:
            y = np.asarray(outcome, dtype=np.int64)
            n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
            if n_pos and n_neg:
                auc = float(stats.mannwhitneyu(probability[y == 1], probability[y == 0]).statistic)
                auc /= n_pos * n_neg
            calibration = DecileCalibration.of(np.asarray(probability, dtype=np.float64), y)
    return TrainingReference(binned, score, auc, n_pos, n_neg, calibration)


def population_stability(reference: np.ndarray, current: np.ndarray) -> float:
    """Return the PSI of two count vectors over the same bins.

    Bins empty in both are left out; every other bin gets
    :data:`PSI_PSEUDO_COUNT` added first, so the PSI stays finite when a bin is
    empty in one sample.
    """
    keep = (reference + current) > 0
    p = (reference[keep] + PSI_PSEUDO_COUNT) / (
        reference[keep].sum() + PSI_PSEUDO_COUNT * keep.sum()
    )
    q = (current[keep] + PSI_PSEUDO_COUNT) / (current[keep].sum() + PSI_PSEUDO_COUNT * keep.sum())
    return float(np.sum((q - p) * np.log(q / p)))


def homogeneity_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, int, float]:
    """Return the chi-square statistic, its degrees of freedom and its p-value.

    Tests that both count vectors come from one distribution. Bins with an
    expected count below :data:`MIN_EXPECTED` in the smaller sample are
    pooled into one bin (dropped if even that is too sparse), where the
    chi-square approximation of the tail would otherwise be too liberal.
    """
    ref = reference.astype(np.float64)
    cur = current.astype(np.float64)
    total = ref + cur
    if ref.sum() == 0 or cur.sum() == 0:
        return math.nan, 0, math.nan
    share = total / total.sum()
    smaller = min(ref.sum(), cur.sum())
    sparse = share * smaller < MIN_EXPECTED
    if sparse.any():
        pooled_ref, pooled_cur = ref[sparse].sum(), cur[sparse].sum()
        ref, cur = ref[~sparse], cur[~sparse]
        if (pooled_ref + pooled_cur) / total.sum() * smaller >= MIN_EXPECTED:
            ref, cur = np.append(ref, pooled_ref), np.append(cur, pooled_cur)
    if ref.size < 2:
        return 0.0, 0, 1.0
    table = np.vstack([ref, cur])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = ref.size - 1
    return statistic, dof, float(stats.chi2.sf(statistic, dof))


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> float:
    """Return the two-sided p-value that two shares (k1/n1, k2/n2) are equal (pooled z)."""
    if n1 == 0 or n2 == 0:
        return math.nan
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(2 * stats.norm.sf(abs(k2 / n2 - k1 / n1) / se))


DRIFT_COLUMNS: tuple[str, ...] = (
    "feature",
    "n_reference",
    "n",
    "psi",
    "chi2",
    "dof",
    "p_value",
    "missing_reference",
    "missing",
    "missing_p_value",
    "most_moved_bin",
    "bin_share_reference",
    "bin_share",
)


def compare_binned(binned: BinnedFeature, values: pd.Series) -> dict[str, object]:
    """Return one row of :func:`drift_table` for one feature."""
    ref = np.asarray(binned.counts, dtype=np.int64)
    cur = binned.count(values)
    statistic, dof, p_value = homogeneity_test(ref, cur)
    ref_share, cur_share = ref / max(ref.sum(), 1), cur / max(cur.sum(), 1)
    moved = int(np.argmax(np.abs(cur_share - ref_share)))
    return {
        "feature": binned.name,
        "n_reference": int(ref.sum()),
        "n": int(cur.sum()),
        "psi": population_stability(ref, cur),
        "chi2": statistic,
        "dof": dof,
        "p_value": p_value,
        "missing_reference": float(ref_share[-1]),
        "missing": float(cur_share[-1]),
        "missing_p_value": two_proportion_test(
            int(ref[-1]), int(ref.sum()), int(cur[-1]), len(values)
        ),
        "most_moved_bin": binned.labels[moved],
        "bin_share_reference": float(ref_share[moved]),
        "bin_share": float(cur_share[moved]),
    }


def drift_table(reference: TrainingReference, assessments: pd.DataFrame) -> pd.DataFrame:
    """Compare every reference feature present in ``assessments`` with its training bins.

    Returns
    -------
    pandas.DataFrame
        One row per feature, columns :data:`DRIFT_COLUMNS`; a feature absent
        from ``assessments`` is left out (the caller says so).
    """
    rows = [
        compare_binned(binned, assessments[binned.name])
        for binned in reference.features
        if binned.name in assessments.columns
    ]
    return pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))
