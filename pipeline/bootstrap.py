"""Bootstrap intervals of the AUC and the calibration gap, many resamples at once.

Each resample is represented by how many times it draws every distinct
(score, outcome) cell, so one ``np.bincount`` and one cumulative sum give the
AUC of many resamples at once, ties included; that keeps 200 resamples of
40,000 rows to a fraction of a second. Intervals are 95 % percentile
intervals.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.calibration_metrics import FloatArray, IntArray

# Bootstrap resamples are processed in chunks so the count matrices stay
# around this many cells (~16 MB of int64) whatever the data size.
_BOOTSTRAP_CELLS_PER_CHUNK = 2_000_000


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


def roc_auc(y: IntArray, p: FloatArray) -> float:
    """Return the rank-based ROC AUC of ``p`` (ties averaged); NaN when one outcome occurs."""
    distinct, cells = _cells(y, p)
    counts = np.bincount(cells, minlength=2 * len(distinct)).reshape(1, -1)
    return float(_auc_from_counts(counts)[0])


def bootstrap_auc_and_gap(
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


def percentile_interval(samples: FloatArray) -> tuple[float, float]:
    """Return the 95 % percentile interval of the finite samples, NaN when too few are finite."""
    finite = samples[np.isfinite(samples)]
    # An interval from a handful of resamples (e.g. a tiny group that rarely
    # draws both outcomes) would look precise while meaning nothing.
    if len(finite) < max(2, len(samples) // 2):
        return math.nan, math.nan
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)
