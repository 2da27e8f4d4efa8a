"""Hashed identifiers behind duplicate checks: repeats in a chunk, ids seen in earlier chunks."""

import numpy as np

from data.duplicate_ids import SeenIds, find_repeats


def test_seen_ids_keep_each_first_row_as_their_table_grows() -> None:
    rng = np.random.default_rng(11)
    hashes = rng.integers(0, 2**63, size=30_000, dtype=np.uint64)
    hashes[:500] = (hashes[:500] >> np.uint64(20)) << np.uint64(20)  # same first slot: probed
    rows = np.arange(1, hashes.size + 1)
    seen = SeenIds()
    for begin in range(0, hashes.size, 7_000):
        part = slice(begin, begin + 7_000)
        assert not seen.first_rows(hashes[part]).any()
        seen.add(hashes[part], rows[part])
    assert (seen.first_rows(hashes) == rows).all()
    seen.add(hashes[:10], rows[:10] + 100_000)  # seen already: the first row stays
    assert (seen.first_rows(hashes[:10]) == rows[:10]).all()
    unseen = rng.integers(0, 2**63, size=1_000, dtype=np.uint64)
    assert not seen.first_rows(np.setdiff1d(unseen, hashes)).any()
    sized = SeenIds(expected=hashes.size)
    sized.add(hashes, rows)
    assert (sized.first_rows(hashes) == rows).all()


def test_repeats_name_each_later_row_and_its_first_even_when_ids_share_a_hash() -> None:
    values = np.array(["a", "b", "a", None, "c", "b", "a"], dtype=object)
    given = np.array([0, 1, 2, 4, 5, 6])
    for hashes in (
        np.array([1, 2, 1, 3, 2, 1], dtype=np.uint64),  # distinct ids, distinct hashes
        np.zeros(given.size, dtype=np.uint64),  # every id shares one hash: compared exactly
    ):
        repeated, first = find_repeats(values, given, hashes)
        assert np.flatnonzero(repeated).tolist() == [2, 5, 6]
        assert first.tolist() == [0, 1, 0]


def test_distinct_ids_have_no_repeats() -> None:
    values = np.array(["a", "b", "c"], dtype=object)
    repeated, first = find_repeats(values, np.arange(3), np.array([5, 6, 7], dtype=np.uint64))
    assert not repeated.any()
    assert first.size == 0
