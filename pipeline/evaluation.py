"""Evaluate calibrated risk scores: discrimination, calibration, bands and groups.

Everything here is a pure function of outcomes ``y`` and probabilities ``p``;
nothing is logged. The caller sends :meth:`Evaluation.metrics` to MLflow and
renders the tables into the model card and plots.

Uncertainty comes from a non-parametric bootstrap (95 % percentile
intervals). Each resample is represented by how many times it draws every
distinct (score, outcome) cell, so one ``np.bincount`` and one cumulative sum
give the AUC of many resamples at once, ties included; that keeps 200
resamples of 40,000 rows to a fraction of a second.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score

from models.bands import BAND_NAMES, RiskBands

#: Group label for people whose protected characteristic was not recorded.
NOT_RECORDED = "not recorded"

#: Number of equal-mass bins used for the expected calibration error.
ECE_BINS = 10

HEADLINE_KEYS: tuple[str, ...] = (
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "pr_auc",
    "brier",
    "log_loss",
    "ece",
    "ece_debiased",
    "calibration_slope",
    "calibration_intercept",
    "base_rate",
    "n",
)
BAND_COLUMNS: tuple[str, ...] = ("band", "n", "share", "mean_predicted", "observed_rate")
GROUP_COLUMNS: tuple[str, ...] = (
    "attribute",
    "group",
    "n",
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "ece",
    "mean_predicted",
    "observed_rate",
    "calibration_gap",
    "calibration_gap_ci_low",
    "calibration_gap_ci_high",
)
_GROUP_METRICS: tuple[str, ...] = GROUP_COLUMNS[2:]
_BAND_METRICS: tuple[str, ...] = BAND_COLUMNS[1:]

# Probabilities are clipped this far from 0 and 1 before taking logits, so a
# score of exactly 0 or 1 gives a finite (very large) logit rather than inf.
_LOGIT_CLIP = 1e-6
# Same idea for the log loss, but tighter, so a confidently wrong score is
# still punished heavily.
_LOG_LOSS_CLIP = 1e-15
# Bootstrap resamples are processed in chunks so the count matrices stay
# around this many cells (~16 MB of int64) whatever the data size.
_BOOTSTRAP_CELLS_PER_CHUNK = 2_000_000
_SAFE_METRIC_NAME = re.compile(r"^[A-Za-z0-9_./ -]*$")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The evaluation of one set of scores against outcomes.

    Attributes
    ----------
    headline
        Whole-sample metrics, keys as in :data:`HEADLINE_KEYS`.
    band_table
        One row per risk band in :data:`models.bands.BAND_NAMES` order, columns
        ``band, n, share, mean_predicted, observed_rate``; an empty band has
        ``n = 0`` and NaN rates.
    group_table
        One row per group of each audited attribute, columns as in
        :data:`GROUP_COLUMNS`. ``calibration_gap`` is mean predicted minus
        observed rate, so a positive gap means the group's risk is
        over-stated.
    """

    headline: dict[str, float]
    band_table: pd.DataFrame
    group_table: pd.DataFrame

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flatten everything into MLflow metric names.

        Parameters
        ----------
        prefix
            Put before every name, e.g. ``"test_"``. Must itself be
            MLflow-safe.

        Returns
        -------
        dict[str, float]
            ``{prefix}{headline key}``, ``{prefix}band_{band}_{column}`` and
            ``{prefix}group_{attribute}_{group}_{column}``, with band and
            group names lower-cased and every run of other characters turned
            into ``_`` (``"very high"`` becomes ``very_high``). NaN values
            are left out, since MLflow cannot chart them.

        Raises
        ------
        ValueError
            If ``prefix`` holds a character MLflow does not allow, or two
            groups of one attribute reduce to the same name.
        """
        if not _SAFE_METRIC_NAME.match(prefix):
            raise ValueError(f"metric prefix {prefix!r} may only use letters, digits and _./ -")
        named: list[tuple[str, float]] = [
            (f"{prefix}{key}", float(value)) for key, value in self.headline.items()
        ]
        for row in self.band_table.itertuples(index=False):
            stem = f"{prefix}band_{_slug(str(row.band))}"
            named += [(f"{stem}_{column}", float(getattr(row, column))) for column in _BAND_METRICS]
        for row in self.group_table.itertuples(index=False):
            stem = f"{prefix}group_{_slug(str(row.attribute))}_{_slug(str(row.group))}"
            named += [
                (f"{stem}_{column}", float(getattr(row, column))) for column in _GROUP_METRICS
            ]
        out = dict(named)
        if len(out) != len(named):
            # e.g. groups "Black" and "black": one would silently overwrite the other.
            clashes = sorted({name for name, _ in named if sum(n == name for n, _ in named) > 1})
            raise ValueError(f"different groups give the same metric names: {clashes[:5]}")
        return {name: value for name, value in out.items() if not math.isnan(value)}

    def max_calibration_gap(self, min_group_size: int) -> float:
        """Return the largest absolute calibration gap among large enough groups.

        Parameters
        ----------
        min_group_size
            Groups with fewer people are ignored: their gaps are mostly noise.

        Returns
        -------
        float
            ``max |mean_predicted - observed_rate|`` over groups with
            ``n >= min_group_size``; NaN when no group qualifies.
        """
        table = self.group_table
        gaps = table.loc[table["n"] >= min_group_size, "calibration_gap"].abs().dropna()
        return float(gaps.max()) if len(gaps) else math.nan


def check_scores(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    """Validate outcomes and probabilities and return them as numpy arrays.

    Parameters
    ----------
    y
        Observed outcomes, 0 or 1 (booleans accepted).
    p
        Predicted probabilities of outcome 1.

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        ``y`` as int64 and ``p`` as float64, both one-dimensional.

    Raises
    ------
    ValueError
        If either is not one-dimensional, they differ in length, they are
        empty, ``y`` holds anything but 0 and 1, or ``p`` holds a value
        outside [0, 1] (NaN included).
    """
    y_arr = np.asarray(y)
    p_arr = np.asarray(p)
    if y_arr.ndim != 1 or p_arr.ndim != 1:
        raise ValueError(
            f"y and p must be one-dimensional, got shapes {y_arr.shape} and {p_arr.shape}"
        )
    if len(y_arr) != len(p_arr):
        raise ValueError(f"y and p differ in length: {len(y_arr)} outcomes, {len(p_arr)} scores")
    if len(y_arr) == 0:
        raise ValueError("y and p are empty: nothing to evaluate")
    try:
        y_float = y_arr.astype(np.float64)
        p_float = p_arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y and p must be numeric: {exc}") from exc
    bad_y = ~np.isin(y_float, (0.0, 1.0))
    if bad_y.any():
        first = int(np.flatnonzero(bad_y)[0])
        raise ValueError(
            f"y must be binary (0 or 1): {int(bad_y.sum())} other values, "
            f"the first {y_arr[first]!r} at position {first}"
        )
    bad_p = ~((p_float >= 0.0) & (p_float <= 1.0))  # NaN fails both comparisons
    if bad_p.any():
        first = int(np.flatnonzero(bad_p)[0])
        raise ValueError(
            f"p must be probabilities in [0, 1]: {int(bad_p.sum())} values outside, "
            f"the first {p_arr[first]!r} at position {first}"
        )
    return y_float.astype(np.int64), p_float


def reliability_bins(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = ECE_BINS) -> pd.DataFrame:
    """Group scores into equal-mass bins and compare predicted with observed.

    The scores are sorted and cut into ``bins`` runs of (nearly) equal
    size, so every bin holds the same number of people whatever the shape of
    the score distribution. Ties may straddle a boundary; they carry the same
    predicted value on both sides, so this does not bias the comparison.

    Parameters
    ----------
    y
        Observed outcomes, 0 or 1.
    p
        Predicted probabilities.
    bins
        Number of bins; fewer when there are fewer people than bins.

    Returns
    -------
    pandas.DataFrame
        One row per bin, columns ``n``, ``mean_predicted``, ``observed_rate``.

    Raises
    ------
    ValueError
        If the inputs are invalid (see :func:`check_scores`) or ``bins < 1``.
    """
    y_arr, p_arr = check_scores(y, p)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    order = np.argsort(p_arr, kind="stable")
    chunks = np.array_split(order, min(bins, len(order)))
    return pd.DataFrame(
        {
            "n": [len(c) for c in chunks],
            "mean_predicted": [float(p_arr[c].mean()) for c in chunks],
            "observed_rate": [float(y_arr[c].mean()) for c in chunks],
        }
    )


def expected_calibration_error(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = ECE_BINS) -> float:
    """Return the expected calibration error over equal-mass bins.

    ECE is the people-weighted mean of ``|mean predicted - observed rate|``
    over the bins of :func:`reliability_bins`. Equal-mass bins are used
    rather than equal-width ones because risk scores bunch at low
    probabilities: equal-width bins would leave the upper bins almost empty
    and noisy while averaging away miscalibration where most people are.

    Parameters
    ----------
    y
        Observed outcomes, 0 or 1.
    p
        Predicted probabilities.
    bins
        Number of equal-mass bins.

    Returns
    -------
    float
        The ECE, between 0 and 1.
    """
    table = reliability_bins(y, p, bins)
    weights = table["n"] / table["n"].sum()
    return float((weights * (table["mean_predicted"] - table["observed_rate"]).abs()).sum())


def debiased_calibration_error(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = ECE_BINS) -> float:
    """Return the calibration error with the sampling noise of the bins taken out.

    The plain ECE is biased upward: even a perfectly calibrated score shows a
    gap of about ``sqrt(rate (1 - rate) / n)`` in every bin of ``n`` people,
    so on ~1,000 people its ECE is about 0.03. This estimator (Bröcker 2012;
    Kumar, Liang and Ma 2019, "Verified uncertainty calibration") subtracts,
    bin by bin, the unbiased estimate of that variance from the squared gap,

    ``sqrt(max(0, sum_b w_b [gap_b^2 - observed_b (1 - observed_b) / (n_b - 1)]))``,

    where ``w_b`` is bin ``b``'s share of people and ``gap_b`` its mean
    predicted minus observed rate, over the same equal-mass bins as
    :func:`expected_calibration_error`. It estimates the root-mean-square
    calibration gap, which is never below the mean absolute gap (the ECE) of
    the same bins, so it is a conservative estimate of the population ECE. It
    is 0 when the observed gaps are no larger than noise would make them.

    Parameters
    ----------
    y
        Observed outcomes, 0 or 1.
    p
        Predicted probabilities.
    bins
        Number of equal-mass bins.

    Returns
    -------
    float
        The estimate, between 0 and 1; NaN when a bin holds one person.
    """
    table = reliability_bins(y, p, bins)
    n = table["n"].to_numpy(dtype=np.float64)
    if (n < 2).any():
        return math.nan
    observed = table["observed_rate"].to_numpy()
    gap = table["mean_predicted"].to_numpy() - observed
    noise = observed * (1 - observed) / (n - 1)
    return float(np.sqrt(max(0.0, float(np.sum(n / n.sum() * (gap**2 - noise))))))


def calibration_slope_intercept(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[float, float]:
    """Fit ``logit P(y = 1) = intercept + slope * logit(p)`` by maximum likelihood.

    A perfectly calibrated score has slope 1 and intercept 0. A slope above 1
    means the scores are too timid (squashed toward the middle), below 1 too
    extreme. The fit is unpenalised logistic regression, solved by Newton's
    method; ``p`` is clipped to ``[1e-6, 1 - 1e-6]`` first.

    Parameters
    ----------
    y
        Observed outcomes, 0 or 1.
    p
        Predicted probabilities.

    Returns
    -------
    tuple[float, float]
        ``(slope, intercept)``; both NaN when the fit has no finite solution
        (a single outcome class, a constant score, or perfect separation).
    """
    y_arr, p_arr = check_scores(y, p)
    if y_arr.min() == y_arr.max():
        return math.nan, math.nan
    clipped = np.clip(p_arr, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    x = np.log(clipped / (1 - clipped))
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(100):
        eta = design @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        weight = mu * (1 - mu)
        gradient = design.T @ (y_arr - mu)
        hessian = design.T @ (design * weight[:, None])
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return math.nan, math.nan
        beta = beta + step
        if not np.all(np.isfinite(beta)):
            return math.nan, math.nan
        if np.max(np.abs(step)) < 1e-10:
            return float(beta[1]), float(beta[0])
    # No convergence in 100 Newton steps means the likelihood keeps rising
    # towards infinite coefficients: perfect separation.
    return math.nan, math.nan


def evaluate_scores(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    bands: RiskBands,
    groups: Mapping[str, np.ndarray | pd.Series],
    n_bootstrap: int = 200,
    seed: int = 0,
) -> Evaluation:
    """Evaluate probabilities ``p`` against outcomes ``y``, overall, by band and by group.

    Parameters
    ----------
    y
        Observed outcomes, 0 or 1.
    p
        Predicted probabilities of outcome 1.
    bands
        The risk bands the scores are reported in.
    groups
        Audited attributes (e.g. ``{"sex": ..., "ethnicity": ...}``), each
        aligned with ``y`` by position. Missing values (None, NaN, pd.NA)
        form the group ``"not recorded"``.
    n_bootstrap
        Bootstrap resamples for the 95 % percentile intervals; 0 gives NaN
        intervals. Groups are resampled within themselves, so a group's
        interval reflects its own size.
    seed
        Seeds the resampling. Each group gets its own stream derived from
        ``seed`` and its name, so its interval does not depend on which other
        groups are evaluated.

    Returns
    -------
    Evaluation
        Headline metrics, the band table and the group table. ECE uses 10
        equal-mass bins (see :func:`expected_calibration_error`); ``pr_auc``
        is the average precision; ``log_loss`` clips ``p`` to
        ``[1e-15, 1 - 1e-15]``; AUCs are NaN where only one outcome occurs.

    Raises
    ------
    ValueError
        If ``y`` or ``p`` is invalid (see :func:`check_scores`), a group array
        differs in length from ``y``, or ``n_bootstrap`` is negative.
    """
    y_arr, p_arr = check_scores(y, p)
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be 0 or more, got {n_bootstrap}")
    n = len(y_arr)
    group_labels = {name: _group_labels(name, values, n) for name, values in groups.items()}

    auc = _roc_auc(y_arr, p_arr)
    boot_auc, _ = _bootstrap(y_arr, p_arr, n_bootstrap, np.random.default_rng([seed]))
    auc_low, auc_high = _percentile_interval(boot_auc)
    slope, intercept = calibration_slope_intercept(y_arr, p_arr)
    clipped = np.clip(p_arr, _LOG_LOSS_CLIP, 1 - _LOG_LOSS_CLIP)
    log_loss = -np.mean(y_arr * np.log(clipped) + (1 - y_arr) * np.log(1 - clipped))
    headline = {
        "roc_auc": auc,
        "roc_auc_ci_low": auc_low,
        "roc_auc_ci_high": auc_high,
        "pr_auc": _average_precision(y_arr, p_arr),
        "brier": float(np.mean((p_arr - y_arr) ** 2)),
        "log_loss": float(log_loss),
        "ece": expected_calibration_error(y_arr, p_arr),
        "ece_debiased": debiased_calibration_error(y_arr, p_arr),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "base_rate": float(y_arr.mean()),
        "n": float(n),
    }
    return Evaluation(
        headline=headline,
        band_table=_band_table(y_arr, p_arr, bands),
        group_table=_group_table(y_arr, p_arr, group_labels, n_bootstrap, seed),
    )


def _band_table(y: IntArray, p: FloatArray, bands: RiskBands) -> pd.DataFrame:
    index = bands.band_index(p)
    rows = []
    for i, name in enumerate(BAND_NAMES):
        members = index == i
        count = int(members.sum())
        rows.append(
            {
                "band": name,
                "n": count,
                "share": count / len(y),
                "mean_predicted": float(p[members].mean()) if count else math.nan,
                "observed_rate": float(y[members].mean()) if count else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=list(BAND_COLUMNS))


def _group_labels(name: str, values: np.ndarray | pd.Series, n: int) -> pd.Series:
    """Return the values as string labels, missing ones as ``NOT_RECORDED``, in report order."""
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else None
    if series is None:
        array = np.asarray(values, dtype=object)
        if array.ndim != 1:
            raise ValueError(f"group {name!r} must be one-dimensional, got shape {array.shape}")
        series = pd.Series(array, dtype=object)
    if len(series) != n:
        raise ValueError(f"group {name!r} has {len(series)} values but there are {n} outcomes")
    missing = series.isna().to_numpy()
    if isinstance(series.dtype, pd.CategoricalDtype):
        # A categorical's declared order (e.g. the schema's) is the natural report order.
        present = set(series[~missing])
        ordered = [c for c in series.cat.categories if c in present]
    else:
        ordered = list(pd.unique(series[~missing]))
        try:
            ordered = sorted(ordered)
        except TypeError:
            ordered = sorted(ordered, key=str)
    order = [str(v) for v in dict.fromkeys(ordered)]
    if missing.any():
        order.append(NOT_RECORDED)
    labels = series.astype(object).where(~missing, NOT_RECORDED).map(str)
    return pd.Series(pd.Categorical(labels, categories=list(dict.fromkeys(order))))


def _group_table(
    y: IntArray,
    p: FloatArray,
    group_labels: Mapping[str, pd.Series],
    n_bootstrap: int,
    seed: int,
) -> pd.DataFrame:
    rows = []
    for attribute, labels in group_labels.items():
        codes = labels.cat.codes.to_numpy()
        for code, group in enumerate(labels.cat.categories):
            members = codes == code
            if not members.any():
                continue
            y_g, p_g = y[members], p[members]
            rng = np.random.default_rng([seed, zlib.crc32(f"{attribute}\0{group}".encode())])
            boot_auc, boot_gap = _bootstrap(y_g, p_g, n_bootstrap, rng)
            auc_low, auc_high = _percentile_interval(boot_auc)
            gap_low, gap_high = _percentile_interval(boot_gap)
            mean_predicted = float(p_g.mean())
            observed_rate = float(y_g.mean())
            rows.append(
                {
                    "attribute": attribute,
                    "group": str(group),
                    "n": int(members.sum()),
                    "roc_auc": _roc_auc(y_g, p_g),
                    "roc_auc_ci_low": auc_low,
                    "roc_auc_ci_high": auc_high,
                    "ece": expected_calibration_error(y_g, p_g),
                    "mean_predicted": mean_predicted,
                    "observed_rate": observed_rate,
                    "calibration_gap": mean_predicted - observed_rate,
                    "calibration_gap_ci_low": gap_low,
                    "calibration_gap_ci_high": gap_high,
                }
            )
    return pd.DataFrame(rows, columns=list(GROUP_COLUMNS))


def _cells(y: IntArray, p: FloatArray) -> tuple[FloatArray, IntArray]:
    """Return the distinct scores and each row's (outcome, score) cell.

    Cells ``0 .. k-1`` hold the negatives at each of the ``k`` distinct
    scores in ascending order, cells ``k .. 2k-1`` the positives, so the two
    halves of a count vector are contiguous.
    """
    distinct, rank = np.unique(p, return_inverse=True)
    return distinct, rank.reshape(-1) + y * len(distinct)


def _auc_from_counts(counts: IntArray) -> FloatArray:
    """Return the Mann-Whitney AUC of each row of ``counts`` (resamples x cells).

    A positive beats every negative with a lower score and half-beats those
    with an equal score, which is the rank-based AUC with ties averaged.
    Doubling the wins keeps the arithmetic in integers.
    """
    half = counts.shape[1] // 2
    negatives = counts[:, :half]
    positives = counts[:, half:]
    doubled = np.cumsum(negatives, axis=1)
    doubled *= 2
    doubled -= negatives  # 2 * (negatives strictly below) + negatives tied
    wins = np.einsum("ij,ij->i", positives, doubled) / 2
    pairs = positives.sum(axis=1) * negatives.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / np.maximum(pairs, 1), np.nan)


def _roc_auc(y: IntArray, p: FloatArray) -> float:
    distinct, cells = _cells(y, p)
    counts = np.bincount(cells, minlength=2 * len(distinct)).reshape(1, -1)
    return float(_auc_from_counts(counts)[0])


def _average_precision(y: IntArray, p: FloatArray) -> float:
    if y.min() == y.max():
        return math.nan
    return float(average_precision_score(y, p))


def _bootstrap(
    y: IntArray, p: FloatArray, n_bootstrap: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Return the AUC and calibration gap (mean p minus mean y) of each bootstrap resample."""
    n = len(y)
    distinct, cells = _cells(y, p)
    n_cells = 2 * len(distinct)
    # What each cell adds to sum(p - y): its score, less 1 for the positives.
    cell_excess = np.concatenate([distinct, distinct - 1.0])
    aucs: list[FloatArray] = []
    gaps: list[FloatArray] = []
    chunk = max(1, _BOOTSTRAP_CELLS_PER_CHUNK // max(n, n_cells))
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        draws = cells[rng.integers(0, n, size=(size, n))]
        draws += np.arange(size)[:, None] * n_cells
        counts = np.bincount(draws.ravel(), minlength=size * n_cells).reshape(size, n_cells)
        aucs.append(_auc_from_counts(counts))
        gaps.append((counts @ cell_excess) / n)
    if not aucs:
        return np.empty(0), np.empty(0)
    return np.concatenate(aucs), np.concatenate(gaps)


def _percentile_interval(samples: FloatArray) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    # An interval from a handful of resamples (e.g. a tiny group that rarely
    # draws both outcomes) would look precise while meaning nothing.
    if len(finite) < max(2, len(samples) // 2):
        return math.nan, math.nan
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def _slug(text: str) -> str:
    """Lower-case ``text`` with every run of other characters as one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "blank"


def _noise_draws(p: npt.ArrayLike, n_draws: int, seed: int) -> FloatArray:
    """ECEs of ``n_draws`` outcome sets drawn as Bernoulli(``p``): pure sampling noise."""
    _, p_arr = check_scores(np.zeros(len(np.asarray(p)), dtype=int), p)
    rng = np.random.default_rng([seed, 3])
    return np.array(
        [
            expected_calibration_error((rng.random(p_arr.size) < p_arr).astype(int), p_arr)
            for _ in range(n_draws)
        ]
    )


def ece_noise_floor(p: npt.ArrayLike, *, n_draws: int = 200, seed: int = 0) -> float:
    """Return the mean ECE of a perfectly calibrated score with these probabilities.

    Outcomes are drawn as Bernoulli(``p``) ``n_draws`` times; each draw's ECE
    is pure sampling noise. On a few thousand rows it is far from zero, so an
    observed ECE should be read against it.
    """
    return float(np.mean(_noise_draws(p, n_draws, seed)))


def ece_noise_test(
    y: npt.ArrayLike, p: npt.ArrayLike, *, n_draws: int = 200, seed: int = 0
) -> tuple[float, float]:
    """Return the noise floor of the ECE and how often noise alone reaches the observed ECE.

    Returns
    -------
    tuple of float
        The floor (as :func:`ece_noise_floor`, same draws for the same
        ``seed``) and the share of perfectly calibrated draws whose ECE is at
        least the observed one: a p-value for "these scores are perfectly
        calibrated". A small share (say below 0.05) means the ECE is more than
        sampling noise; a large one means these rows cannot tell the scores
        from perfectly calibrated ones.
    """
    draws = _noise_draws(p, n_draws, seed)
    observed = expected_calibration_error(y, p)
    return float(np.mean(draws)), float(np.mean(draws >= observed))
