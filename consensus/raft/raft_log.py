"""RaftLog: the stable log (Storage) plus the unstable tail, with the commit and apply cursors.

Indexes: first_index() <= applied+1, applied <= committed <= last_index().
"""

from __future__ import annotations

from collections.abc import Sequence

from corral.consensus.raft.errors import Compacted, InvariantViolation, StorageError, Unavailable
from corral.consensus.raft.storage import Storage, limit_size
from corral.consensus.raft.types import Entry, Snapshot
from corral.consensus.raft.unstable import Unstable


class RaftLog:
    def __init__(self, storage: Storage, max_committed_size: int | None = None) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # Everything up to the snapshot is committed and applied by definition.
        self.committed = first - 1
        self.applied = first - 1
        self.max_committed_size = max_committed_size

    def __repr__(self) -> str:
        return (
            f"RaftLog(committed={self.committed}, applied={self.applied}, "
            f"unstable.offset={self.unstable.offset}, unstable.len={len(self.unstable.entries)})"
        )

    # Boundaries and terms.

    def first_index(self) -> int:
        first = self.unstable.maybe_first_index()
        return first if first is not None else self.storage.first_index()

    def last_index(self) -> int:
        last = self.unstable.maybe_last_index()
        return last if last is not None else self.storage.last_index()

    def term(self, index: int) -> int:
        """The term at `index`; 0 beyond the last index; raises Compacted before the snapshot."""
        dummy = self.first_index() - 1
        if index < dummy:
            raise Compacted(f"index {index} compacted (first available {dummy + 1})")
        if index > self.last_index():
            return 0
        term = self.unstable.maybe_term(index)
        if term is not None:
            return term
        return self.storage.term(index)

    def zero_term_on_err(self, index: int) -> int:
        try:
            return self.term(index)
        except StorageError:
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except StorageError:
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """§5.4.1: a candidate's log is at least as up-to-date as ours: a later last term, or the
        same last term and at least as long."""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    # Appending.

    def maybe_append(self, index: int, log_term: int, committed: int, entries: Sequence[Entry]) -> int | None:
        """Follower side of AppendEntries (§5.3). Returns the last new index, or None to reject.

        Rejects unless our log holds (index, log_term); drops our entries from the first conflict on;
        never truncates committed entries; commits min(leader commit, last new index).
        """
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise InvariantViolation(
                    f"entry {conflict} conflicts with committed entry (committed {self.committed})"
                )
            self.append(entries[conflict - (index + 1) :])
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, entries: Sequence[Entry]) -> int:
        if not entries:
            return self.last_index()
        after = entries[0].index - 1
        if after < self.committed:
            raise InvariantViolation(f"append after {after} is below committed {self.committed}")
        self.unstable.truncate_and_append(entries)
        return self.last_index()

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """The index of the first entry whose term differs from ours (or that we lack); 0 if none.

        By the Log Matching Property (§5.3) everything before it is identical.
        """
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest i <= index whose term is <= `term`, and that term (fast log backtracking).

        Entries after i cannot match a log whose entry at `index` has `term`, as terms never decrease
        along a log. Returns (i, 0) when the term at i is unknown (compacted).
        """
        index = min(index, self.last_index())
        while index > 0:
            try:
                current = self.term(index)
            except StorageError:
                return index, 0
            if current <= term:
                return index, current
            index -= 1
        return 0, 0

    # Reading.

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def entries(self, lo: int, max_size: int | None) -> list[Entry]:
        if lo > self.last_index():
            return []
        return self.slice(lo, self.last_index() + 1, max_size)

    def all_entries(self) -> list[Entry]:
        """Every available entry (tests and debugging)."""
        return self.entries(self.first_index(), None)

    def slice(self, lo: int, hi: int, max_size: int | None) -> list[Entry]:
        """Entries [lo, hi) limited to `max_size`; raises Compacted if lo precedes the first entry."""
        first = self.first_index()
        if lo < first:
            raise Compacted(f"index {lo} compacted (first available {first})")
        if lo > hi or hi > self.last_index() + 1:
            raise InvariantViolation(f"slice [{lo}, {hi}) out of bounds [{first}, {self.last_index() + 1})")
        if lo == hi:
            return []
        result: list[Entry] = []
        offset = self.unstable.offset
        if lo < offset:
            try:
                stored = self.storage.entries(lo, min(hi, offset), max_size)
            except Unavailable as exc:
                raise InvariantViolation(f"entries [{lo}, {min(hi, offset)}) missing from storage") from exc
            if len(stored) < min(hi, offset) - lo:
                return stored  # size-limited
            result = stored
        if hi > offset:
            result = result + self.unstable.slice(max(lo, offset), hi)
        return limit_size(result, max_size)

    def next_committed_entries(self) -> list[Entry]:
        """Committed entries not yet applied, within the per-Ready size limit."""
        if self.unstable.snapshot is not None:
            return []  # the snapshot must be applied first
        lo = max(self.applied + 1, self.first_index())
        if lo > self.committed:
            return []
        return self.slice(lo, self.committed + 1, self.max_committed_size)

    def has_next_committed_entries(self) -> bool:
        if self.unstable.snapshot is not None:
            return False
        return max(self.applied + 1, self.first_index()) <= self.committed

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    # Cursors.

    def commit_to(self, commit: int) -> None:
        # Never decrease commit (§5.3: committed entries are durable and will be applied).
        if commit > self.committed:
            if commit > self.last_index():
                raise InvariantViolation(f"commit {commit} beyond last index {self.last_index()}")
            self.committed = commit

    def maybe_commit(self, index: int, term: int) -> bool:
        """Leader: advance commit to `index` only if it is from the current `term` (§5.4.2)."""
        if index > self.committed and self.zero_term_on_err(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index == 0:
            return
        if index > self.committed or index < self.applied:
            raise InvariantViolation(f"applied {index} outside [{self.applied}, {self.committed}]")
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        self.unstable.stable_snap_to(index)

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the log with `snapshot` (follower far behind the leader's compacted log)."""
        self.committed = snapshot.meta.index
        self.unstable.restore(snapshot)
