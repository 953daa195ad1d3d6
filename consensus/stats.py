"""Counters and latency histograms the logs keep about themselves, read by whoever exports metrics.

Plain numbers, no exporter: the API layer turns them into Prometheus metrics at scrape time, so the
consensus code depends on nothing and pays one addition per event.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# etcd's buckets: fsync and snapshot durations double from 1 ms; peer round trips from 0.1 ms.
DISK_BUCKETS = tuple(0.001 * 2**i for i in range(14))
ROUND_TRIP_BUCKETS = tuple(0.0001 * 2**i for i in range(16))


@dataclass(slots=True)
class Histogram:
    """Observations counted into fixed buckets (upper bounds, seconds), with their sum."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)  # the last counts what is above every bound

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it) for each bucket, then +inf."""
        out, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(slots=True)
class LogStats:
    leader_changes: int = 0  # times this member saw a new leader
    proposals_failed: int = 0  # proposals that ended in an error (no leader, timeout)
    slow_applies: int = 0  # entries whose apply took longer than SLOW_APPLY_SECONDS
    wal_fsync: Histogram = field(default_factory=lambda: Histogram(DISK_BUCKETS))
    snapshot_save: Histogram = field(default_factory=lambda: Histogram(DISK_BUCKETS))
    peer_round_trip: dict[int, Histogram] = field(default_factory=dict)

    def round_trip(self, peer: int, seconds: float) -> None:
        histogram = self.peer_round_trip.get(peer)
        if histogram is None:
            histogram = self.peer_round_trip[peer] = Histogram(ROUND_TRIP_BUCKETS)
        histogram.observe(seconds)


SLOW_APPLY_SECONDS = 0.1  # etcd's warning threshold for an apply
