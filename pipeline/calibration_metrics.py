"""Calibration of risk scores: input checks, reliability bins, ECE, slope and noise floor.

Pure functions of outcomes ``y`` and probabilities ``p``. Every function
checks its inputs with :func:`check_scores`; ``y`` and ``p`` are always the
observed outcomes (0 or 1) and the predicted probabilities of outcome 1,
aligned by position.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

#: Number of equal-mass bins used for the expected calibration error.
ECE_BINS = 10

# Probabilities are clipped this far from 0 and 1 before taking logits, so a
# score of exactly 0 or 1 gives a finite (very large) logit rather than inf.
_LOGIT_CLIP = 1e-6

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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
    y, p
        Outcomes and probabilities (see the module docstring).
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
    y, p
        Outcomes and probabilities (see the module docstring).
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

    Takes the same arguments as :func:`expected_calibration_error` and
    returns the estimate, between 0 and 1; NaN when a bin holds one person.
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
    y, p
        Outcomes and probabilities (see the module docstring).

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


#: Random numbers drawn at once by :func:`_noise_draws` (bounds its memory: 8 bytes each).
_NOISE_CELLS = 4_000_000


def _noise_draws(p: npt.ArrayLike, n_draws: int, seed: int) -> FloatArray:
    """ECEs of ``n_draws`` outcome sets drawn as Bernoulli(``p``): pure sampling noise.

    Each draw's ECE is :func:`expected_calibration_error` of that draw, to the
    last bit: the bins depend on ``p`` alone, so they are cut once and every
    draw's outcomes counted per bin in one array (draws x people, in chunks),
    from the same random numbers in the same order as one draw at a time.
    Counts are whole numbers, so the observed rates are exactly those of
    :func:`reliability_bins`, and the rest is its arithmetic on them.
    """
    _, p_arr = check_scores(np.zeros(len(np.asarray(p)), dtype=int), p)
    rng = np.random.default_rng([seed, 3])
    chunks = np.array_split(np.argsort(p_arr, kind="stable"), min(ECE_BINS, len(p_arr)))
    sizes = np.array([len(c) for c in chunks])
    starts = np.cumsum(sizes) - sizes
    mean_predicted = np.array([float(p_arr[c].mean()) for c in chunks])
    weights = sizes / sizes.sum()
    order = np.concatenate(chunks)
    p_sorted = p_arr[order]
    per_chunk = max(1, _NOISE_CELLS // max(len(p_arr), 1))
    out = []
    for begin in range(0, n_draws, per_chunk):
        size = min(per_chunk, n_draws - begin)
        # Row i is the i-th draw's rng.random(len(p)), people in p's order; sorted as the bins.
        outcomes = rng.random((size, len(p_arr)))[:, order] < p_sorted
        observed = np.add.reduceat(outcomes, starts, axis=1, dtype=np.int64) / sizes
        out.append(np.sum(weights * np.abs(mean_predicted - observed), axis=1))
    return np.concatenate(out) if out else np.zeros(0)


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
