"""The replicated log as the rest of Corral sees it.

The API proposes opaque commands and awaits the state machine's result for each; it never learns how
the log is made durable or agreed on. The single-node log here and the Raft log implement the same
protocol, so the server does not change when replication arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .membership import Member
    from .stats import LogStats


class SnapshotSource(Protocol):
    """A captured point in the state machine, written out while apply goes on."""

    index: int  # the last applied index the snapshot includes

    def chunks(self) -> list[tuple[str, Callable[[], bytes]]]:
        """The snapshot as named chunks whose concatenation is its data. Equal names mean equal bytes,
        so chunks already stored need not be produced again; producing may run on a worker thread
        while entries keep being applied."""
        ...

    def release(self) -> None:
        """Called on the apply thread once the snapshot is written (or abandoned)."""
        ...


class StateMachine(Protocol):
    """What the log drives: deterministic apply of committed entries, and snapshots."""

    applied_index: int

    def apply(self, index: int, data: bytes, decoded: object | None = None) -> object:
        """Apply the entry at `index`; the return value is handed to whoever proposed it.

        `decoded` is the proposer's own decoding of `data`, passed back on the node that proposed it so
        the hot path need not decode what it just encoded. Apply must do the same with or without it.
        """
        ...

    def snapshot(self) -> SnapshotSource:
        """Capture the current state cheaply; the heavy serialization happens in `serialize`."""
        ...

    def restore(self, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class LogStatus:
    member_id: int
    leader_id: int  # 0 when there is no leader
    term: int
    last_index: int
    commit_index: int
    applied_index: int
    storage_bytes: int  # WAL and snapshot files on disk
    pending_proposals: int = 0  # proposed here, not yet applied


class LogError(Exception):
    """The log could not take a proposal (closed, failed storage, no leader)."""


class LogClosed(LogError):
    pass


class NotLeader(LogError):
    """The request needs the leader, and this member is not it."""


class BadTransferee(LogError):
    """Leadership cannot be moved to that member (not a voting member)."""


class NotApplied(LogError):
    """The proposal was not applied and never will be: a leader of a later term committed an entry this
    member applied first (see proposal_stamps.py). Proposing the same command again is safe."""


class LogFailed(LogError):
    """Storage failed; the node stops taking writes rather than risk acknowledging a lost one."""


class MembershipError(LogError):
    """A membership change was refused; nothing was changed."""


class MemberNotFound(MembershipError):
    pass


class MemberExists(MembershipError):
    """A member with that id is already in the cluster."""


class PeerURLExists(MembershipError):
    """Another member already uses one of those peer URLs."""


class NotLearner(MembershipError):
    """Only a learner can be promoted."""


class LearnerNotReady(MembershipError):
    """The learner's log is too far behind the leader's to let it vote yet."""


class TooManyLearners(MembershipError):
    pass


class NotEnoughStartedMembers(MembershipError):
    """The change would leave fewer running voters than the new quorum needs."""


class MembershipUnsupported(MembershipError):
    """This log cannot change its membership (a member that runs without Raft)."""


class ReplicatedLog(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def propose(self, data: bytes, decoded: object | None = None) -> object:
        """Append `data`, wait until it is durable and applied, return the state machine's result.

        `decoded`, if given, is handed to the state machine's apply on this node (see StateMachine).
        """
        ...

    async def read_barrier(self) -> None:
        """Return once local reads reflect every write acknowledged before the call (linearizable)."""
        ...

    async def transfer_leadership(self, target: int) -> None:
        """Make `target` the leader; only the leader can do this. Returns once `target` leads."""
        ...

    @property
    def term(self) -> int:
        """The current term (what etcd reports as raft_term)."""
        ...

    def status(self) -> LogStatus: ...

    @property
    def failed(self) -> bool:
        """Whether the log stopped for good (its storage failed): nothing more will be accepted."""
        ...

    @property
    def stats(self) -> LogStats:
        """Counters and latency histograms about the log (exported as metrics)."""
        ...

    @property
    def cluster_id(self) -> int:
        """The cluster's id; 0 until a joining member has learned it from the log."""
        ...

    def members(self) -> list[Member]:
        """The members as of the last applied entry, sorted by id."""
        ...

    async def add_member(self, peer_urls: tuple[str, ...], is_learner: bool) -> Member:
        """Add a member (a learner does not vote); returns it once the change is applied here."""
        ...

    async def remove_member(self, member_id: int) -> None: ...

    async def update_member(self, member_id: int, peer_urls: tuple[str, ...]) -> None: ...

    async def promote_member(self, member_id: int) -> None:
        """Make a learner a voter once its log has caught up; only the leader can judge that, so
        other members raise NotLeader."""
        ...
