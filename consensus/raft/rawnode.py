"""RawNode: the application's handle on a Raft node. Single-threaded; the asyncio driver wraps it.

Loop: feed ticks, peer messages and proposals in; whenever has_ready(), take ready(), process it in
the order documented on Ready, then advance(ready).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from corral.consensus.raft.config import RaftConfig
from corral.consensus.raft.progress import ProgressState
from corral.consensus.raft.raft import Raft
from corral.consensus.raft.storage import Storage
from corral.consensus.raft.types import (
    LOCAL_MESSAGES,
    NONE,
    RESPONSE_MESSAGES,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    Role,
    SoftState,
)

MT = MessageType


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    match: int
    next: int
    state: ProgressState
    is_learner: bool
    recent_active: bool


@dataclass(frozen=True, slots=True)
class Status:
    """A snapshot of the node's state for monitoring and tests; `progress` is filled on the leader."""

    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    last_index: int
    conf_state: ConfState
    lead_transferee: int
    progress: dict[int, ProgressStatus] = field(default_factory=dict)


class RawNode:
    def __init__(self, config: RaftConfig, storage: Storage) -> None:
        self.raft = Raft(config, storage)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()
        self._outstanding: Ready | None = None

    @property
    def id(self) -> int:
        return self.raft.id

    def tick(self) -> None:
        """Advance logical time by one tick (election or heartbeat timer)."""
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (with PreVote if configured)."""
        self.raft.step(Message(MT.HUP, frm=self.id))

    def propose(self, data: bytes) -> int:
        """Propose `data` for the log; raises ProposalDropped if it cannot be taken now.

        Success means only that the proposal was appended or forwarded; it commits when (and if) it
        shows up in a Ready's committed_entries. Returns the term the proposal was stamped with (see
        `propose_batch`).
        """
        term = self.raft.term
        self.raft.step(Message(MT.PROP, frm=self.id, entries=(Entry(term, 0, data),)))
        return term

    def propose_batch(self, batch: Sequence[bytes]) -> int:
        """Propose several entries at once (one append, one message per follower); all or none.

        Each proposed entry carries our current term, its stamp, and keeps it when forwarded; a leader
        of a later term drops it rather than append it (leader._propose). Returns that term: once this
        node applies an entry of a later term without having applied the proposal, the proposal will
        never be applied (the argument is in consensus/proposal_stamps.py).
        """
        term = self.raft.term
        self.raft.step(Message(MT.PROP, frm=self.id, entries=tuple(Entry(term, 0, data) for data in batch)))
        return term

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose a membership change. The leader turns it into an empty entry if another change
        is still unapplied or it would leave no voters. Returns the stamp, as `propose_batch`."""
        term = self.raft.term
        entry = Entry(term, 0, change.encode(), EntryType.CONF_CHANGE)
        self.raft.step(Message(MT.PROP, frm=self.id, entries=(entry,)))
        return term

    def step(self, m: Message) -> None:
        """Handle a message from a peer."""
        if m.type in LOCAL_MESSAGES:
            raise ValueError(f"{m.type.name} is a local message and cannot come from a peer")
        if m.type in RESPONSE_MESSAGES and m.frm not in self.raft.progress:
            return  # a response from a node outside our configuration
        self.raft.step(m)

    def read_index(self, context: bytes) -> None:
        """Request a linearizable read point; answered by a ReadState carrying `context`.

        The context must be non-empty and unique among pending reads. The request may be lost
        (leader change); the caller retries after a timeout.
        """
        if not context:
            raise ValueError("read_index needs a non-empty context")
        self.raft.step(Message(MT.READ_INDEX, frm=self.id, context=context))

    def transfer_leader(self, transferee: int) -> None:
        """Ask the leader to hand leadership to `transferee` (best effort)."""
        self.raft.step(Message(MT.TRANSFER_LEADER, frm=transferee, to=self.id))

    def report_unreachable(self, node: int) -> None:
        """The transport failed to deliver to `node`."""
        self.raft.step(Message(MT.UNREACHABLE, frm=node))

    def report_snapshot(self, node: int, ok: bool) -> None:
        """The transport finished (ok) or failed sending a snapshot to `node`.

        Report every SNAP message's fate: until then the leader sends that follower nothing else.
        """
        self.raft.step(Message(MT.SNAP_STATUS, frm=node, reject=not ok))

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Apply a committed conf change (call while applying its entry); returns the new membership."""
        return self.raft.apply_conf_change(change)

    @property
    def conf_change_pending(self) -> bool:
        """Whether this node leads and a membership change it accepted is not yet applied (a second
        change proposed now would be turned into a no-op)."""
        r = self.raft
        return r.role is Role.LEADER and r.pending_conf_index > r.log.applied

    def has_ready(self) -> bool:
        """Whether ready() would return something to do (False while a Ready awaits advance())."""
        if self._outstanding is not None:
            return False
        r = self.raft
        if r.soft_state() != self._prev_soft:
            return True
        hard = r.hard_state()
        if hard != self._prev_hard and not hard.is_empty():
            return True
        return bool(
            r.msgs
            or r.read_states
            or r.log.unstable.entries
            or r.log.unstable.snapshot is not None
            or r.log.has_next_committed_entries()
        )

    def ready(self) -> Ready:
        """Take the pending work. Call advance() with it before the next ready()."""
        if self._outstanding is not None:
            raise RuntimeError("advance() the previous Ready before taking another")
        r = self.raft
        soft, hard = r.soft_state(), r.hard_state()
        entries = tuple(r.log.unstable.entries)
        snapshot = r.log.unstable.snapshot
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            entries=entries,
            snapshot=snapshot,
            committed_entries=tuple(r.log.next_committed_entries()),
            messages=tuple(r.msgs),
            read_states=tuple(r.read_states),
            # Term and vote must be durable before we answer anyone; a commit index need not be.
            must_sync=bool(entries)
            or snapshot is not None
            or hard.term != self._prev_hard.term
            or hard.vote != self._prev_hard.vote,
        )
        r.msgs = []
        r.read_states = []
        self._prev_soft = soft
        self._prev_hard = hard
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """The application persisted, sent and applied `rd`."""
        if rd is not self._outstanding:
            raise RuntimeError("advance() takes the Ready most recently returned by ready()")
        log = self.raft.log
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.meta.index)
            log.applied_to(rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)
        self._outstanding = None

    def status(self) -> Status:
        r = self.raft
        progress: dict[int, ProgressStatus] = {}
        if r.role is Role.LEADER:
            progress = {
                node: ProgressStatus(pr.match, pr.next, pr.state, pr.is_learner, pr.recent_active)
                for node, pr in r.progress.items()
            }
        return Status(
            id=r.id,
            hard_state=r.hard_state(),
            soft_state=r.soft_state(),
            applied=r.log.applied,
            last_index=r.log.last_index(),
            conf_state=r.conf_state,
            lead_transferee=r.lead_transferee if r.role is Role.LEADER else NONE,
            progress=progress,
        )
