"""The leader's view of each follower: how far it matches, what to send next, and flow control.

States (after etcd-io/raft's tracker design):
- PROBE: we do not know where the follower's log matches; send one APP per heartbeat and wait.
- REPLICATE: the follower is caught up on the matching prefix; stream APPs optimistically
  (pipelining), bounded by the Inflights window.
- SNAPSHOT: the follower needs entries we compacted; a snapshot is in flight, send nothing else.
"""

from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """A bounded window of APPs sent but not acknowledged, each recorded by its last entry index."""

    __slots__ = ("capacity", "_queue")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("inflights capacity must be positive")
        self.capacity = capacity
        self._queue: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, last_index: int) -> None:
        if self.full():
            raise OverflowError("inflights window is full")
        if self._queue and last_index < self._queue[-1]:
            raise ValueError(f"inflight {last_index} out of order (after {self._queue[-1]})")
        self._queue.append(last_index)

    def free_le(self, index: int) -> None:
        """Acknowledge every message whose last index is <= `index`."""
        while self._queue and self._queue[0] <= index:
            self._queue.popleft()

    def free_first_one(self) -> None:
        if self._queue:
            self._queue.popleft()

    def full(self) -> bool:
        return len(self._queue) >= self.capacity

    def reset(self) -> None:
        self._queue.clear()


class Progress:
    """Replication progress of one peer, as seen by the leader.

    Invariant: match < next. `recent_active` feeds CheckQuorum; `probe_sent` pauses PROBE until a reply.
    """

    __slots__ = (
        "match",
        "next",
        "state",
        "pending_snapshot",
        "recent_active",
        "probe_sent",
        "inflights",
        "is_learner",
    )

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        self.recent_active = False
        self.probe_sent = False
        self.inflights = Inflights(max_inflight)
        self.is_learner = is_learner

    def __repr__(self) -> str:
        text = f"{self.state.value} match={self.match} next={self.next}"
        if self.is_learner:
            text += " learner"
        if self.state is ProgressState.SNAPSHOT:
            text += f" pending_snapshot={self.pending_snapshot}"
        if self.probe_sent:
            text += " paused"
        if len(self.inflights):
            text += f" inflight={len(self.inflights)}"
        return text

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            # The follower has (or will have) the snapshot; probe right after it.
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """The follower acknowledged entries up to `index`; returns whether match advanced."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def on_append_sent(self, last_index: int | None) -> None:
        """An APP went out, carrying entries up to `last_index` (None: no entries)."""
        if self.state is ProgressState.REPLICATE:
            if last_index is not None:
                # Pipelining: assume success and move on; a rejection rewinds next to match+1.
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True  # any APP in PROBE is a probe: one at a time

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an APP at `rejected`; rewind next. False if the rejection is stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # an old, reordered rejection
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # not a reply to our latest probe
        self.next = max(min(rejected, match_hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True  # SNAPSHOT: wait for the outcome
