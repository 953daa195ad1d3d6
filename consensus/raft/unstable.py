"""The log tail not yet persisted: entries (and possibly a snapshot) the next Ready hands out."""

from __future__ import annotations

from collections.abc import Sequence

from corral.consensus.raft.errors import InvariantViolation
from corral.consensus.raft.types import Entry, Snapshot


class Unstable:
    """Entries from `offset` on, plus an incoming snapshot, awaiting the application's write.

    Invariant: if `snapshot` is set, `offset == snapshot.meta.index + 1`.
    """

    __slots__ = ("snapshot", "entries", "offset")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        """The first log index if an unstable snapshot defines it."""
        if self.snapshot is not None:
            return self.snapshot.meta.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.meta.index
        return None

    def maybe_term(self, index: int) -> int | None:
        if index < self.offset:
            if self.snapshot is not None and self.snapshot.meta.index == index:
                return self.snapshot.meta.term
            return None
        last = self.maybe_last_index()
        if last is None or index > last:
            return None
        return self.entries[index - self.offset].term

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to `index` were persisted; forget them unless they were replaced meanwhile."""
        current = self.maybe_term(index)
        if current is None or current != term or index < self.offset:
            return
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.meta.index == index:
            self.snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        self.offset = snapshot.meta.index + 1
        self.entries = []
        self.snapshot = snapshot

    def truncate_and_append(self, entries: Sequence[Entry]) -> None:
        after = entries[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif after <= self.offset:
            # Replaces the whole unstable tail (and stable entries from `after` on, via the new offset).
            self.offset = after
            self.entries = list(entries)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(entries)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        upper = self.offset + len(self.entries)
        if lo > hi or lo < self.offset or hi > upper:
            raise InvariantViolation(f"unstable slice [{lo}, {hi}) out of [{self.offset}, {upper})")
        return self.entries[lo - self.offset : hi - self.offset]
