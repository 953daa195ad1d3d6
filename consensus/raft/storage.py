"""The Storage protocol the Raft core reads its stable log from, and MemoryStorage.

The application writes to storage (entries, hard state, snapshots from a Ready); the core only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from corral.consensus.raft.errors import Compacted, InvariantViolation, SnapshotOutOfDate, Unavailable
from corral.consensus.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMeta


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership as of the latest snapshot."""
        ...

    def entries(self, lo: int, hi: int, max_size: int | None) -> list[Entry]:
        """Entries [lo, hi), at least one if any, at most `max_size` payload bytes beyond the first.

        Raises Compacted if lo was compacted, Unavailable if the range is not stored.
        """
        ...

    def term(self, index: int) -> int:
        """The term of the entry at `index`, valid for first_index()-1 .. last_index()."""
        ...

    def first_index(self) -> int:
        """The index of the first entry still available (the snapshot index + 1)."""
        ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot; may raise SnapshotTemporarilyUnavailable."""
        ...


def limit_size(entries: Sequence[Entry], max_size: int | None) -> list[Entry]:
    """The longest prefix within `max_size` payload bytes; never empty if `entries` is not."""
    if max_size is None or not entries:
        return list(entries)
    total = entries[0].size()
    end = 1
    while end < len(entries):
        total += entries[end].size()
        if total > max_size:
            break
        end += 1
    return list(entries[:end])


class MemoryStorage:
    """Storage held in memory: used by every test and as the read model of durable storage.

    `_ents[0]` is a dummy entry carrying the snapshot's index and term, so term() works at the boundary.
    """

    def __init__(self, conf_state: ConfState | None = None) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot(SnapshotMeta(0, 0, conf_state or ConfState()))
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    @classmethod
    def with_members(cls, voters: Sequence[int], learners: Sequence[int] = ()) -> MemoryStorage:
        """A fresh storage whose initial membership is `voters` and `learners` (bootstrap)."""
        return cls(ConfState.of(list(voters), list(learners)))

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.meta.conf_state

    def hard_state(self) -> HardState:
        return self._hard_state

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def _offset(self) -> int:
        return self._ents[0].index

    def entries(self, lo: int, hi: int, max_size: int | None) -> list[Entry]:
        offset = self._offset()
        if lo <= offset:
            raise Compacted(f"index {lo} compacted (first available {offset + 1})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"entries [{lo}, {hi}) beyond last index {self.last_index()}")
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def term(self, index: int) -> int:
        offset = self._offset()
        if index < offset:
            raise Compacted(f"index {index} compacted (first available {offset + 1})")
        if index - offset >= len(self._ents):
            raise Unavailable(f"index {index} beyond last index {self.last_index()}")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        return self._offset() + 1

    def last_index(self) -> int:
        return self._offset() + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log with `snapshot` (a follower catching up)."""
        if snapshot.meta.index <= self._snapshot.meta.index:
            raise SnapshotOutOfDate(f"snapshot {snapshot.meta.index} <= {self._snapshot.meta.index}")
        self._snapshot = snapshot
        self._ents = [Entry(term=snapshot.meta.term, index=snapshot.meta.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the application state as of applied `index` (then maybe compact)."""
        if index <= self._snapshot.meta.index:
            raise SnapshotOutOfDate(f"snapshot {index} <= {self._snapshot.meta.index}")
        if index > self.last_index():
            raise InvariantViolation(f"snapshot {index} beyond last index {self.last_index()}")
        meta = SnapshotMeta(index, self.term(index), conf_state)
        self._snapshot = Snapshot(meta, data)
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Discard entries before `compact_index`; it becomes the dummy entry. Snapshot first."""
        offset = self._offset()
        if compact_index <= offset:
            raise Compacted(f"index {compact_index} already compacted")
        if compact_index > self.last_index():
            raise InvariantViolation(f"compact {compact_index} beyond last index {self.last_index()}")
        i = compact_index - offset
        self._ents = [Entry(term=self._ents[i].term, index=compact_index)] + self._ents[i + 1 :]

    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries, replacing any stored suffix they conflict with; compacted ones are skipped."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._offset()
        if offset > len(self._ents):
            raise InvariantViolation(f"missing log entries before {entries[0].index} (last {self.last_index()})")
        del self._ents[offset:]  # in place: appending at the end (the common case) copies nothing
        self._ents.extend(entries)
