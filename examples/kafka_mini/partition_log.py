"""One replica of a partition, in memory: its log, its high watermark, and (while leading) its ISR.

A record is an `Entry` (the leader epoch that appended it, and its value); its offset is its index. The
high watermark is how far the log is known to be on every in-sync replica: a leader moves it after each
successful replication round, a follower takes it from the leader's requests. Consumers read only below it,
so they never see a record that a leader change could take back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

__all__ = ["Entry", "PartitionLog"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A record as a replica keeps it."""

    epoch: int
    value: str


@dataclass
class PartitionLog:
    """A replica's state; `lock` serializes appends, replication rounds and truncation."""

    entries: list[Entry] = field(default_factory=list)
    high_watermark: int = 0
    known_epoch: int = 0  # the highest leader epoch this replica has seen (from metadata or a leader)
    leader_epoch: int | None = None  # the epoch this replica leads in, None while following
    isr: tuple[int, ...] = ()  # while leading: the in-sync replicas, as stored in the partition state
    follower_end: dict[int, int] = field(default_factory=dict)  # while leading: each follower's log end
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def log_end(self) -> int:
        return len(self.entries)

    def lead(self, epoch: int, isr: tuple[int, ...]) -> None:
        """Start leading at `epoch`; what followers hold is learnt again from their answers."""
        self.leader_epoch = epoch
        self.known_epoch = max(self.known_epoch, epoch)
        self.isr = isr
        self.follower_end = {}

    def follow(self) -> None:
        self.leader_epoch = None
        self.isr = ()
        self.follower_end = {}

    def append(self, epoch: int, values: list[str]) -> int:
        """Append as leader; returns the first new offset."""
        base = self.log_end
        self.entries.extend(Entry(epoch, value) for value in values)
        return base

    def replace_from(self, base: int, entries: list[Entry], high_watermark: int) -> None:
        """A follower takes the leader's entries from `base` on, dropping whatever it held from there."""
        del self.entries[base:]
        self.entries.extend(entries)
        self.high_watermark = min(max(self.high_watermark, high_watermark), self.log_end)

    def read(self, offset: int, max_records: int) -> list[tuple[int, str]]:
        """Records from `offset` below the high watermark."""
        end = min(self.high_watermark, offset + max_records)
        return [(offset + i, entry.value) for i, entry in enumerate(self.entries[offset:end])]
