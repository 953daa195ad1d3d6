"""Values that travel through the Raft core: entries, states, snapshots, messages and Ready batches.

Node ids are positive ints; `NONE` (0) stands for "no node" (no leader, no vote), as in etcd-io/raft.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

NONE = 0
"""The id meaning "no node": no leader known, no vote cast."""

CAMPAIGN_TRANSFER = b"CampaignTransfer"
"""Vote-request context marking an election started by a leadership transfer; it bypasses the leader lease."""


class EntryType(enum.Enum):
    NORMAL = 0
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. An empty NORMAL entry is the no-op a new leader appends.

    In a PROP message, before any leader has appended it, `index` is 0 and `term` is the proposal's
    stamp: the term its proposer was in when the proposal entered the core (0: unstamped).
    """

    term: int
    index: int
    data: bytes = b""
    type: EntryType = EntryType.NORMAL

    def size(self) -> int:
        """The payload size counted against message and Ready size limits."""
        return len(self.data)


class ConfChangeType(enum.Enum):
    ADD_VOTER = 0  # also promotes an existing learner
    REMOVE_NODE = 1
    ADD_LEARNER = 2  # also demotes an existing voter
    UPDATE_NODE = 3  # no change to who votes: carries the member's new metadata in its context


_CC_HEADER = struct.Struct(">BQ")


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single membership change, carried as the data of a CONF_CHANGE entry."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def encode(self) -> bytes:
        return _CC_HEADER.pack(self.type.value, self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        """Raises ValueError for data that is not an encoded ConfChange."""
        try:
            kind, node_id = _CC_HEADER.unpack_from(data)
        except struct.error as exc:
            raise ValueError(f"bad conf change encoding: {exc}") from exc
        return cls(ConfChangeType(kind), node_id, bytes(data[_CC_HEADER.size :]))


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on stable storage before messages are sent: term, vote and commit index."""

    term: int = 0
    vote: int = NONE
    commit: int = 0

    def is_empty(self) -> bool:
        return self == EMPTY_HARD_STATE


EMPTY_HARD_STATE = HardState()


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class CampaignType(enum.Enum):
    PRE_ELECTION = "pre-election"  # PreVote round first (thesis §9.6); the term is raised only on success
    ELECTION = "election"
    TRANSFER = "transfer"  # ordered by TIMEOUT_NOW: skips PreVote and the leader lease


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth reporting to the application: who leads, and our role."""

    lead: int = NONE
    role: Role = Role.FOLLOWER


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership: voting members and non-voting learners, each sorted and disjoint."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if tuple(sorted(set(self.voters))) != self.voters or tuple(sorted(set(self.learners))) != self.learners:
            raise ValueError(f"conf state ids must be sorted and unique: {self}")
        if set(self.voters) & set(self.learners):
            raise ValueError(f"a node cannot be both voter and learner: {self}")

    @classmethod
    def of(cls, voters: tuple[int, ...] | list[int] = (), learners: tuple[int, ...] | list[int] = ()) -> ConfState:
        return cls(tuple(sorted(set(voters))), tuple(sorted(set(learners))))

    def contains(self, node_id: int) -> bool:
        return node_id in self.voters or node_id in self.learners


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf_state: ConfState = ConfState()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The application state as of `meta.index`, with the membership at that index."""

    meta: SnapshotMeta = SnapshotMeta()
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.meta.index == 0


class MessageType(enum.Enum):
    # Local messages: never sent over the network.
    HUP = "Hup"  # start an election
    BEAT = "Beat"  # leader: send heartbeats
    PROP = "Prop"  # propose entries (may be forwarded to the leader)
    SNAP_STATUS = "SnapStatus"  # the application reports a snapshot send outcome
    UNREACHABLE = "Unreachable"  # the application reports a peer unreachable
    CHECK_QUORUM = "CheckQuorum"  # leader: step down unless a quorum was recently active
    # Peer messages.
    APP = "App"
    APP_RESP = "AppResp"
    VOTE = "Vote"
    VOTE_RESP = "VoteResp"
    PRE_VOTE = "PreVote"
    PRE_VOTE_RESP = "PreVoteResp"
    HEARTBEAT = "Heartbeat"
    HEARTBEAT_RESP = "HeartbeatResp"
    SNAP = "Snap"
    TRANSFER_LEADER = "TransferLeader"  # local or forwarded to the leader
    TIMEOUT_NOW = "TimeoutNow"
    READ_INDEX = "ReadIndex"  # local or forwarded to the leader
    READ_INDEX_RESP = "ReadIndexResp"


LOCAL_MESSAGES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.SNAP_STATUS,
        MessageType.UNREACHABLE,
        MessageType.CHECK_QUORUM,
    }
)
RESPONSE_MESSAGES = frozenset(
    {
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.PRE_VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
    }
)


@dataclass(frozen=True, slots=True)
class Message:
    """A Raft message. Which fields matter depends on `type`; unused ones keep their defaults.

    APP: (log_term, index) identify the entry preceding `entries`. APP_RESP: `index` is the last index
    now matching the leader, or on reject the rejected probe index, with `reject_hint`/`log_term` naming
    the follower's best guess of the divergence point (fast backtracking). PROP: `term` stays 0 (a request,
    local to whoever handles it, forwarded or not); each entry's `term` is the proposer's stamp (see Entry).
    """

    type: MessageType
    to: int = NONE
    frm: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the application has applied up to `index`."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """What the application must do next, in order (the etcd-io/raft contract):

    1. persist `snapshot` (if any), `entries` and `hard_state` (fsync if `must_sync`);
    2. send `messages`;
    3. apply `snapshot` then `committed_entries` to the state machine; serve `read_states` once applied;
    4. call `RawNode.advance(ready)`.
    """

    soft_state: SoftState | None = None  # None: unchanged since the last Ready
    hard_state: HardState | None = None  # None: unchanged since the last Ready
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = False

    def is_empty(self) -> bool:
        return self == Ready()
