"""RaftLog: append/conflict rules of §5.3, the up-to-date rule of §5.4.1, cursors and the unstable tail."""

from __future__ import annotations

import pytest
from corral.consensus.raft.errors import Compacted, InvariantViolation
from corral.consensus.raft.raft_log import RaftLog
from corral.consensus.raft.storage import MemoryStorage
from corral.consensus.raft.types import ConfState, Entry, Snapshot, SnapshotMeta


def log_with(*terms: int, stable: bool = True) -> RaftLog:
    storage = MemoryStorage()
    entries = [Entry(t, i + 1) for i, t in enumerate(terms)]
    if stable:
        storage.append(entries)
        return RaftLog(storage)
    log = RaftLog(storage)
    log.append(entries)
    return log


def terms_of(log: RaftLog) -> list[int]:
    return [e.term for e in log.all_entries()]


@pytest.mark.parametrize("stable", [True, False])
def test_maybe_append_rejects_without_matching_previous_entry(stable: bool) -> None:
    log = log_with(1, 2, 3, stable=stable)
    assert log.maybe_append(3, 2, 3, [Entry(4, 4)]) is None  # term at 3 is 3, not 2
    assert log.maybe_append(4, 3, 3, [Entry(4, 5)]) is None  # index 4 missing
    assert terms_of(log) == [1, 2, 3]


@pytest.mark.parametrize("stable", [True, False])
def test_maybe_append_truncates_from_the_first_conflict(stable: bool) -> None:
    log = log_with(1, 2, 3, stable=stable)
    assert log.maybe_append(1, 1, 0, [Entry(4, 2), Entry(4, 3), Entry(4, 4)]) == 4
    assert terms_of(log) == [1, 4, 4, 4]


def test_maybe_append_keeps_entries_beyond_a_stale_shorter_append() -> None:
    log = log_with(1, 2, 3)
    # A delayed APP whose entries we already have must not truncate later ones (§5.3).
    assert log.maybe_append(1, 1, 0, [Entry(2, 2)]) == 2
    assert terms_of(log) == [1, 2, 3]


def test_maybe_append_commits_min_of_leader_commit_and_last_new_entry() -> None:
    log = log_with(1, 1, 1)
    assert log.maybe_append(1, 1, 10, [Entry(1, 2)]) == 2
    assert log.committed == 2
    log2 = log_with(1, 1, 1)
    log2.maybe_append(3, 1, 1, [])
    assert log2.committed == 1


def test_conflicting_with_a_committed_entry_is_an_invariant_violation() -> None:
    log = log_with(1, 1, 1)
    log.commit_to(3)
    with pytest.raises(InvariantViolation):
        log.maybe_append(1, 1, 3, [Entry(2, 2)])


def test_find_conflict() -> None:
    log = log_with(1, 2, 3)
    assert log.find_conflict([Entry(1, 1), Entry(2, 2)]) == 0
    assert log.find_conflict([Entry(2, 2), Entry(3, 3), Entry(4, 4)]) == 4  # new entries
    assert log.find_conflict([Entry(1, 1), Entry(4, 2)]) == 2


@pytest.mark.parametrize(
    ("index", "term", "expected"),
    [
        (8, 5, (8, 5)),
        (8, 4, (5, 4)),  # skip the whole term-5 run
        (8, 3, (3, 3)),
        (8, 1, (1, 1)),
        (8, 0, (0, 0)),
        (20, 6, (8, 5)),  # beyond our log
    ],
)
def test_find_conflict_by_term_skips_whole_terms(index: int, term: int, expected: tuple[int, int]) -> None:
    log = log_with(1, 2, 3, 4, 4, 5, 5, 5)
    assert log.find_conflict_by_term(index, term) == expected


def test_find_conflict_by_term_stops_at_compaction() -> None:
    storage = MemoryStorage()
    storage.append([Entry(t, i + 1) for i, t in enumerate([1, 2, 3, 4, 5])])
    storage.compact(3)
    log = RaftLog(storage)
    assert log.find_conflict_by_term(5, 1) == (2, 0)


@pytest.mark.parametrize(
    ("last_index", "term", "up_to_date"),
    [
        (2, 4, True),  # later last term wins regardless of length
        (5, 2, False),  # earlier last term loses regardless of length
        (3, 3, True),  # same term, same length
        (4, 3, True),  # same term, longer
        (2, 3, False),  # same term, shorter
    ],
)
def test_is_up_to_date_compares_last_term_then_length(last_index: int, term: int, up_to_date: bool) -> None:
    # §5.4.1
    assert log_with(1, 2, 3).is_up_to_date(last_index, term) is up_to_date


def test_maybe_commit_only_commits_entries_of_the_given_term() -> None:
    # §5.4.2
    log = log_with(1, 1, 2)
    assert not log.maybe_commit(2, 2)
    assert log.committed == 0
    assert log.maybe_commit(3, 2)
    assert log.committed == 3
    assert not log.maybe_commit(2, 1)  # never backwards


def test_commit_beyond_last_index_is_an_invariant_violation() -> None:
    with pytest.raises(InvariantViolation):
        log_with(1).commit_to(2)


def test_next_committed_entries_respects_applied_and_size_limit() -> None:
    storage = MemoryStorage()
    storage.append([Entry(1, i, b"x" * 10) for i in range(1, 6)])
    log = RaftLog(storage, max_committed_size=25)
    log.commit_to(4)
    assert [e.index for e in log.next_committed_entries()] == [1, 2]
    log.applied_to(2)
    assert [e.index for e in log.next_committed_entries()] == [3, 4]
    log.applied_to(4)
    assert log.next_committed_entries() == [] and not log.has_next_committed_entries()
    with pytest.raises(InvariantViolation):
        log.applied_to(5)


def test_unstable_entries_become_stable_only_if_unchanged() -> None:
    log = log_with(1, 1)
    log.append([Entry(2, 3), Entry(2, 4)])
    assert [e.index for e in log.unstable_entries()] == [3, 4]
    log.stable_to(4, 1)  # wrong term: the entry was replaced meanwhile
    assert len(log.unstable_entries()) == 2
    log.storage.append([Entry(2, 3)])  # type: ignore[attr-defined]  # the application persists first
    log.stable_to(3, 2)
    assert [e.index for e in log.unstable_entries()] == [4]
    assert log.term(3) == 2  # now served by storage


def test_slice_spans_storage_and_unstable_tail() -> None:
    log = log_with(1, 1)
    log.append([Entry(2, 3)])
    assert [(e.term, e.index) for e in log.slice(1, 4, None)] == [(1, 1), (1, 2), (2, 3)]
    with pytest.raises(InvariantViolation):
        log.slice(1, 5, None)


def test_restore_replaces_the_log_with_a_snapshot() -> None:
    log = log_with(1, 1, 1)
    snap = Snapshot(SnapshotMeta(10, 3, ConfState.of([1])), b"s")
    log.restore(snap)
    assert (log.first_index(), log.last_index(), log.committed, log.last_term()) == (11, 10, 10, 3)
    with pytest.raises(Compacted):
        log.term(5)
    assert log.next_committed_entries() == []  # the snapshot is applied first
    assert log.snapshot() is snap
