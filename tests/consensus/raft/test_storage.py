"""MemoryStorage: the dummy-entry layout, compaction, snapshots and the errors the core relies on."""

from __future__ import annotations

import pytest
from corral.consensus.raft.errors import Compacted, InvariantViolation, SnapshotOutOfDate, Unavailable
from corral.consensus.raft.storage import MemoryStorage, limit_size
from corral.consensus.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMeta


def storage_with(first: int, last: int, term: int = 1) -> MemoryStorage:
    """Entries first..last after compacting everything before `first`."""
    s = MemoryStorage.with_members([1, 2, 3])
    s.append([Entry(term, i) for i in range(1, last + 1)])
    if first > 1:
        s.compact(first - 1)
    return s


def test_empty_storage_has_first_index_one_and_last_zero() -> None:
    s = MemoryStorage()
    assert (s.first_index(), s.last_index(), s.term(0)) == (1, 0, 0)
    assert s.initial_state() == (HardState(), ConfState())


def test_term_is_known_from_the_compaction_point_to_the_last_index() -> None:
    s = storage_with(4, 6)
    assert s.term(3) == 1  # the dummy entry keeps the compacted entry's term
    with pytest.raises(Compacted):
        s.term(2)
    with pytest.raises(Unavailable):
        s.term(7)


def test_entries_raise_compacted_below_first_index_and_respect_max_size() -> None:
    s = MemoryStorage()
    s.append([Entry(1, i, b"x" * 10) for i in range(1, 6)])
    assert [e.index for e in s.entries(2, 6, None)] == [2, 3, 4, 5]
    assert [e.index for e in s.entries(2, 6, 25)] == [2, 3]
    assert [e.index for e in s.entries(2, 6, 0)] == [2]  # always at least one
    s.compact(3)
    with pytest.raises(Compacted):
        s.entries(3, 5, None)
    with pytest.raises(Unavailable):
        s.entries(4, 7, None)


def test_append_truncates_a_conflicting_suffix_and_skips_compacted_entries() -> None:
    s = storage_with(3, 5)
    s.append([Entry(2, 4), Entry(2, 5), Entry(2, 6)])
    assert [(e.term, e.index) for e in s.entries(3, 7, None)] == [(1, 3), (2, 4), (2, 5), (2, 6)]
    s.append([Entry(1, 1), Entry(1, 2)])  # wholly compacted: ignored
    assert s.last_index() == 6
    with pytest.raises(InvariantViolation):
        s.append([Entry(2, 9)])  # a gap


def test_compact_twice_raises_compacted() -> None:
    s = storage_with(1, 5)
    s.compact(3)
    assert s.first_index() == 4
    with pytest.raises(Compacted):
        s.compact(3)
    with pytest.raises(InvariantViolation):
        s.compact(6)


def test_create_and_apply_snapshot() -> None:
    s = storage_with(1, 5)
    cs = ConfState.of([1, 2, 3])
    snap = s.create_snapshot(4, cs, b"state")
    assert snap.meta == SnapshotMeta(4, 1, cs)
    with pytest.raises(SnapshotOutOfDate):
        s.create_snapshot(3, cs, b"")
    other = MemoryStorage()
    other.apply_snapshot(Snapshot(SnapshotMeta(7, 3, cs), b"x"))
    assert (other.first_index(), other.last_index(), other.term(7)) == (8, 7, 3)
    assert other.initial_state()[1] == cs
    with pytest.raises(SnapshotOutOfDate):
        other.apply_snapshot(Snapshot(SnapshotMeta(7, 3, cs)))


def test_limit_size_keeps_at_least_one_entry() -> None:
    ents = [Entry(1, i, b"ab") for i in range(1, 5)]
    assert limit_size(ents, None) == ents
    assert limit_size(ents, 1) == ents[:1]
    assert limit_size(ents, 4) == ents[:2]
    assert limit_size([], 0) == []
