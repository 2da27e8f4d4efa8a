"""Bootstrap intervals, many resamples at once: the AUC, calibration and flag rates of groups.

Each resample is represented by how many times it draws every distinct
(score, outcome) cell, so one ``np.bincount`` and one cumulative sum give the
AUC of many resamples at once, ties included; that keeps 200 resamples of
40,000 rows to a fraction of a second. Intervals are 95 % percentile
intervals.

Groups are resampled within themselves, once: :func:`draw_group_resamples`
draws, for every group of every audited attribute, how many times each
member appears in each resample (one count matrix per group, seeded by the
seed and the group's name). :func:`group_figures` reads every figure of a
scored model in that group off the same matrix (ROC AUC from ranks, mean
predicted, observed rate, calibration gap, and the selection, false positive
and false negative rates at each cut-off), so the evaluation's per-group
table, the fairness audit and its ratios all show the same interval for the
same figure.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

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


@dataclass(frozen=True, eq=False)
class GroupDraws:
    """The resamples of one group: who is in it and how often each member is drawn.

    Attributes
    ----------
    attribute, group
        The audited attribute and the group's label.
    rows
        Positions of the group's members among the audited rows.
    counts
        ``(n_bootstrap, len(rows))``: how many times each member is drawn in
        each resample (each row sums to ``len(rows)``); no rows when not resampled.
    """

    attribute: str
    group: str
    rows: IntArray
    counts: npt.NDArray[np.int32]

    @property
    def n(self) -> int:
        """People in the group."""
        return len(self.rows)


@dataclass(frozen=True, eq=False)
class GroupResamples:
    """Every group's resamples, drawn once and read by every model and figure."""

    n_bootstrap: int
    seed: int
    groups: tuple[GroupDraws, ...]

    def of(self, attribute: str) -> tuple[GroupDraws, ...]:
        """Return the groups of ``attribute``, in report order."""
        return tuple(g for g in self.groups if g.attribute == attribute)


def _group_rng(seed: int, attribute: str, group: str) -> np.random.Generator:
    # A stream per group, so a group's interval does not depend on which other
    # groups (or attributes) are drawn beside it.
    return np.random.default_rng([seed, zlib.crc32(f"{attribute}\0{group}".encode())])


def _draw_counts(n: int, n_bootstrap: int, rng: np.random.Generator) -> npt.NDArray[np.int32]:
    counts = np.empty((n_bootstrap, n), dtype=np.int32)
    chunk = max(1, _BOOTSTRAP_CELLS_PER_CHUNK // max(n, 1))
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        draws = rng.integers(0, n, size=(size, n))
        draws += np.arange(size)[:, None] * n
        counts[start : start + size] = np.bincount(draws.ravel(), minlength=size * n).reshape(
            size, n
        )
    return counts


def group_order(labels: pd.Series) -> list[str]:
    """Return the groups of ``labels`` in report order: a categorical's own order, else sorted."""
    if isinstance(labels.dtype, pd.CategoricalDtype):
        present = set(labels.dropna())
        return [str(c) for c in labels.cat.categories if c in present]
    return sorted({str(v) for v in labels.dropna()})


def draw_group_resamples(
    labels: Mapping[str, pd.Series], n_bootstrap: int, seed: int
) -> GroupResamples:
    """Draw ``n_bootstrap`` resamples within every group of every attribute in ``labels``.

    Parameters
    ----------
    labels
        Attribute name to each row's group label (missing values already
        labelled), all aligned with the same rows.
    n_bootstrap
        Resamples per group; 0 draws none (figures without intervals).
    seed
        With the attribute and group names, seeds each group's own stream.
    """
    drawn = []
    for attribute, values in labels.items():
        text = values.astype(str).to_numpy()
        for group in group_order(values):
            rows = np.flatnonzero(text == group)
            counts = _draw_counts(len(rows), n_bootstrap, _group_rng(seed, attribute, group))
            drawn.append(GroupDraws(attribute, group, rows, counts))
    return GroupResamples(n_bootstrap, seed, tuple(drawn))


#: The figures of a group that need no cut-off, in the order of :attr:`GroupFigures.values`.
THRESHOLD_FREE: tuple[str, ...] = ("roc_auc", "mean_predicted", "observed_rate", "calibration_gap")
#: The figures at each cut-off ``i``, keyed ``f"{name}@{i}"``.
FLAG_RATES: tuple[str, ...] = ("selection_rate", "fpr", "fnr")


@dataclass(frozen=True, eq=False)
class GroupFigures:
    """One scored model's figures in one group, with every resample's value.

    Keys are :data:`THRESHOLD_FREE` and, for cut-off ``i``, ``selection_rate@i``,
    ``fpr@i`` and ``fnr@i``.
    """

    attribute: str
    group: str
    n: int
    values: dict[str, float]
    samples: dict[str, FloatArray]

    def interval(self, key: str) -> tuple[float, float]:
        """Return the 95 % percentile interval of ``key`` (NaN when not resampled)."""
        return percentile_interval(self.samples[key])


def _figures_from_counts(
    counts: npt.NDArray[np.integer],
    columns: FloatArray,
    flags: FloatArray,
    cells: IntArray,
    n_cells: int,
    n_thresholds: int,
) -> dict[str, FloatArray]:
    """Every figure of each resample (a row of ``counts``), from per-member columns and cells.

    ``columns`` holds each member's probability and outcome; ``flags``, three
    columns per cut-off: flagged, flagged without the outcome, not flagged with it.
    """
    n = float(counts.shape[1])
    weights = counts.astype(np.float64)
    # Sums of p and y apart from the cut-offs' columns, so they are bit for bit the same
    # whatever cut-offs are asked (the evaluation asks none, the audit some).
    totals = weights @ columns
    sums = weights @ flags
    positives = totals[:, 1]
    negatives = n - positives
    mean_predicted, observed = totals[:, 0] / n, positives / n
    out = {
        "mean_predicted": mean_predicted,
        "observed_rate": observed,
        "calibration_gap": mean_predicted - observed,
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(n_thresholds):
            flagged, false_positive, false_negative = sums[:, 3 * i : 3 * i + 3].T
            out[f"selection_rate@{i}"] = flagged / n
            out[f"fpr@{i}"] = np.where(negatives > 0, false_positive / negatives, np.nan)
            out[f"fnr@{i}"] = np.where(positives > 0, false_negative / positives, np.nan)
    # Each resample's count of every (outcome, score) cell: members sorted by cell, summed.
    order = np.argsort(cells, kind="stable")
    sorted_cells = cells[order]
    starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
    cell_counts = np.zeros((counts.shape[0], n_cells), dtype=np.int64)
    cell_counts[:, sorted_cells[starts]] = np.add.reduceat(
        counts[:, order], starts, axis=1, dtype=np.int64
    )
    out["roc_auc"] = _auc_from_counts(cell_counts)
    return out


def group_figures(
    draws: GroupDraws,
    y: IntArray,
    probability: FloatArray,
    score: FloatArray,
    thresholds: Sequence[float] = (),
) -> GroupFigures:
    """Return a model's figures in one group, each with its value in every resample of ``draws``.

    Parameters
    ----------
    draws
        The group's resamples (:func:`draw_group_resamples`).
    y, probability, score
        Outcomes, predicted probabilities and the score cut-offs apply to
        (the probability itself, or another tool's decile), over all rows.
    thresholds
        Cut-offs: flagged when ``score >= threshold``.

    Returns
    -------
    GroupFigures
        The ROC AUC (ranks of ``score``, ties averaged; NaN with one outcome),
        mean predicted, observed rate, calibration gap (mean predicted minus
        observed) and, at each cut-off, the share flagged, the false positive
        rate (flagged among those who did not re-offend) and the false
        negative rate (not flagged among those who did).
    """
    rows = draws.rows
    y_g = y[rows]
    score_g = score[rows]
    columns = np.column_stack([probability[rows], y_g]).astype(np.float64)
    flag_columns = []
    for threshold in thresholds:
        flagged = score_g >= threshold
        flag_columns += [flagged, flagged & (y_g == 0), ~flagged & (y_g == 1)]
    flags = (
        np.column_stack(flag_columns).astype(np.float64)
        if flag_columns
        else np.empty((len(rows), 0))
    )
    distinct, cells = _cells(y_g, score_g)
    n_cells = 2 * len(distinct)
    values = _figures_from_counts(
        np.ones((1, len(rows)), dtype=np.int64), columns, flags, cells, n_cells, len(thresholds)
    )
    parts: list[dict[str, FloatArray]] = []
    # Chunks of resamples keep the cell-count matrix bounded whatever the group's size.
    chunk = max(1, _BOOTSTRAP_CELLS_PER_CHUNK // max(n_cells, len(rows), 1))
    for start in range(0, draws.counts.shape[0], chunk):
        counts = draws.counts[start : start + chunk]
        parts.append(_figures_from_counts(counts, columns, flags, cells, n_cells, len(thresholds)))
    samples = {
        key: np.concatenate([part[key] for part in parts]) if parts else np.empty(0)
        for key in values
    }
    return GroupFigures(
        attribute=draws.attribute,
        group=draws.group,
        n=draws.n,
        values={key: float(value[0]) for key, value in values.items()},
        samples=samples,
    )
