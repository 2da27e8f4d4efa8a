"""Duplicate identifiers: within one chunk of a table, and across the chunks of one file.

Both checks work on 64-bit hashes of the identifiers, never on a store of
their text, so that a million-row file is checked with a few vectorised
passes and about 32 bytes a row. :mod:`data.validation` reports what they
find as violations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class SeenIds:
    """Identifiers met in earlier chunks of one file, to find duplicates across chunks.

    Keeps a 64-bit hash and the row number of each identifier (never the
    text) in an open-addressing hash table at most half full, so that a
    chunk's identifiers are looked up and added with a few vectorised passes
    (about 32 bytes a row). Two different identifiers share a hash with a
    probability of about n²/2⁶⁵ (3e-8 for a million rows); a collision would
    reject a row as a duplicate, never let a duplicate pass.
    """

    def __init__(self, expected: int = 0) -> None:
        """Start empty, with room for ``expected`` identifiers (when the file's rows are known).

        Sized once, the table is not rebuilt as it fills; it grows past that as needed.
        """
        size = _FIRST_SLOTS
        while size < 2 * expected:
            size *= 2
        # Slot i holds (hash, row); row 0 marks an empty slot (data rows count from 1).
        self._slots = np.zeros((size, 2), dtype=np.uint64)
        self._count = 0

    @staticmethod
    def hashes(ids: pd.Series) -> np.ndarray:
        """Return the 64-bit hash of each identifier."""
        return pd.util.hash_array(ids.to_numpy(dtype=object), categorize=False)

    def first_rows(self, hashes: np.ndarray) -> np.ndarray:
        """Return the row where each hash was first seen, 0 where it is new."""
        found = np.zeros(hashes.size, dtype=np.int64)
        if self._count == 0:
            return found
        pending, slot = self._start(hashes)
        while pending.size:
            # take, not slots[slot]: a 2-D fancy index is several times slower.
            held = np.take(self._slots, slot, axis=0)
            occupied = held[:, 1] != 0
            hit = occupied & (held[:, 0] == hashes[pending])
            found[pending[hit]] = held[hit, 1].astype(np.int64)
            probing = occupied & ~hit
            pending, slot = pending[probing], self._next(slot[probing])
        return found

    def add(self, hashes: np.ndarray, rows: np.ndarray) -> None:
        """Remember identifiers' hashes and row numbers; a hash already seen keeps its first row."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        distinct, first = np.unique(hashes, return_index=True)
        new = self.first_rows(distinct) == 0
        self.add_new(distinct[new], np.asarray(rows, dtype=np.int64)[first[new]])

    def add_new(self, hashes: np.ndarray, rows: np.ndarray) -> None:
        """Remember distinct hashes not seen yet, with their rows (each at least 1).

        What :meth:`add` does once it has dropped repeated and known hashes.
        """
        if 2 * (self._count + hashes.size) > len(self._slots):
            self._grow(self._count + hashes.size)
        keys, held_rows = self._slots[:, 0], self._slots[:, 1]
        pending, slot = self._start(hashes)
        while pending.size:
            free = held_rows[slot] == 0
            claimed, claimants = slot[free], pending[free]
            # Claimants of the same free slot all write; whoever's hash stayed has it.
            keys[claimed] = hashes[claimants]
            won = keys[claimed] == hashes[claimants]
            held_rows[claimed[won]] = rows[claimants[won]].astype(np.uint64)
            lost = np.ones(pending.size, dtype=bool)
            lost[np.flatnonzero(free)[won]] = False
            pending, slot = pending[lost], self._next(slot[lost])
        self._count += hashes.size

    def _grow(self, count: int) -> None:
        held = self._slots[self._slots[:, 1] != 0]
        size = len(self._slots)
        while 2 * count > size:
            size *= 2
        self._slots = np.zeros((size, 2), dtype=np.uint64)
        self._count = 0
        self.add_new(held[:, 0], held[:, 1].astype(np.int64))

    def _start(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return every hash's position and its first slot (the hashes' low bits)."""
        mask = np.uint64(len(self._slots) - 1)
        return np.arange(hashes.size), (hashes & mask).astype(np.intp)

    def _next(self, slot: np.ndarray) -> np.ndarray:
        return (slot + 1) & (len(self._slots) - 1)


#: Slots of an empty SeenIds (a power of two, as every size it grows to).
_FIRST_SLOTS = 1 << 12


def find_repeats(
    values: np.ndarray, given: np.ndarray, hashes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return which rows repeat an earlier row's id, and the position of each one's first.

    ``given`` holds the positions of the ids present, ``hashes`` their hashes.
    Equal hashes are found by a sort; their texts are compared, and should two
    different ids share a hash, the ids are compared exactly instead.
    """
    repeated = np.zeros(values.size, dtype=bool)
    order = np.argsort(hashes, kind="stable")
    same = hashes[order[1:]] == hashes[order[:-1]]
    if not same.any():
        return repeated, np.empty(0, dtype=np.intp)
    # Each repeat's run of equal hashes starts at its first (earliest, as the sort is stable).
    starts = np.maximum.accumulate(np.where(np.append(False, same), 0, np.arange(order.size)))
    again = np.flatnonzero(np.append(False, same))
    rows, firsts = given[order[again]], given[order[starts[again]]]
    if all(a == b for a, b in zip(values[rows], values[firsts], strict=True)):
        repeated[rows] = True
        ordered = np.argsort(rows)
        return repeated, firsts[ordered]
    text = pd.Series(values[given])
    again_mask = text.duplicated(keep="first").to_numpy()
    codes, _ = pd.factorize(text)
    known, first_position = np.unique(codes, return_index=True)
    repeated[given[again_mask]] = True
    return repeated, given[first_position[np.searchsorted(known, codes[again_mask])]]
