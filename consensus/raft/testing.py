"""An in-memory cluster of RawNodes for tests and simulation: one seeded rng, no I/O, no clock.

Each node processes Ready batches in the etcd-io/raft order: persist (snapshot, entries, hard
state), send messages, apply (snapshot, committed entries), advance. The network is a list of
in-flight messages with drop, partition and reorder faults driven by the cluster's rng.
An optional Checker verifies Raft's safety properties as the cluster runs.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from corral.consensus.raft.config import RaftConfig
from corral.consensus.raft.describe import describe_entries, describe_message
from corral.consensus.raft.errors import ProposalDropped
from corral.consensus.raft.raft import Raft
from corral.consensus.raft.rawnode import RawNode
from corral.consensus.raft.storage import MemoryStorage
from corral.consensus.raft.types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
)

MT = MessageType
BOOTSTRAP_INDEX = 1  # initial members start from a snapshot at 1/1, so joiners catch up by snapshot


def encode_history(history: Sequence[tuple[int, bytes]]) -> bytes:
    return b"\n".join(b"%d %s" % (index, data.hex().encode()) for index, data in history)


def decode_history(data: bytes) -> list[tuple[int, bytes]]:
    if not data:
        return []
    result = []
    for line in data.split(b"\n"):
        index, hexdata = line.split(b" ")
        result.append((int(index), bytes.fromhex(hexdata.decode())))
    return result


class SimStorage(MemoryStorage):
    """MemoryStorage whose snapshot() is refreshed on demand from the node's applied state."""

    def __init__(self, node: SimNode, conf_state: ConfState | None = None) -> None:
        super().__init__(conf_state)
        self._node = node

    def snapshot(self) -> Snapshot:
        node = self._node
        if node.applied_index > super().snapshot().meta.index:
            self.create_snapshot(node.applied_index, node.conf_state, encode_history(node.history))
        return super().snapshot()


@dataclass
class SimNode:
    """A RawNode with its storage and a trivial state machine: the list of applied payloads."""

    id: int
    config: RaftConfig
    storage: SimStorage = field(init=False)
    rawnode: RawNode = field(init=False)
    history: list[tuple[int, bytes]] = field(default_factory=list)  # (index, data) of applied payloads
    applied_index: int = 0
    conf_state: ConfState = ConfState()
    read_states: list[ReadState] = field(default_factory=list)

    @property
    def raft(self) -> Raft:
        return self.rawnode.raft

    def data(self) -> list[bytes]:
        return [data for _, data in self.history]


class Checker:
    """Raft safety properties, checked incrementally (§5.2 Election Safety, §5.3 Log Matching,
    §5.4 Leader Completeness and State Machine Safety), and the verdict the driver draws from proposal
    stamps: a proposal its node gives up on (it applied an entry of a term after the proposal's stamp
    first) is never applied anywhere (consensus/proposal_stamps.py)."""

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}  # term -> leader id
        self.entries: dict[tuple[int, int], tuple[int, EntryType, bytes]] = {}  # (index, term) -> prev term, ...
        self.applied: dict[int, tuple[EntryType, bytes]] = {}  # index -> what every node applied there
        self._completeness_checked: dict[int, int] = {}  # node id -> term last checked
        self.read_floors: dict[bytes, int] = {}  # read context -> highest index committed before it
        self.pending: dict[int, dict[bytes, int]] = {}  # node id -> its proposals' data -> stamp term
        self.proposed: set[bytes] = set()
        self.repeated: set[bytes] = set()  # data proposed more than once: the verdict cannot tell them apart
        self.applied_data: set[bytes] = set()
        self.given_up: set[bytes] = set()  # proposals declared never to be applied

    def on_persist(self, node: SimNode, entries: Sequence[Entry]) -> None:
        storage = node.storage
        for e in entries:
            if e.index < storage.first_index():
                continue
            # Log Matching by induction: same (index, term) => same entry and same previous term.
            record = (storage.term(e.index - 1), e.type, e.data)
            seen = self.entries.setdefault((e.index, e.term), record)
            assert seen == record, f"log matching violated at {e.term}/{e.index} on {node.id}: {seen} != {record}"

    def on_apply(self, node: SimNode, e: Entry) -> None:
        assert e.index == node.applied_index + 1, f"node {node.id} applied {e.index} after {node.applied_index}"
        record = (e.type, e.data)
        seen = self.applied.setdefault(e.index, record)
        assert seen == record, f"state machine safety violated at {e.index} on {node.id}: {seen} != {record}"
        if e.type is EntryType.NORMAL and e.data:
            assert e.data not in self.given_up, f"{e.data!r} applied at {e.term}/{e.index} after it was given up"
            self.applied_data.add(e.data)
        pending = self.pending.get(node.id)
        if not pending:
            return
        pending.pop(e.data, None)
        for data in [data for data, stamp in pending.items() if stamp < e.term]:
            del pending[data]
            if data not in self.repeated:
                assert data not in self.applied_data, f"{data!r} given up by {node.id} at {e.term}/{e.index}"
                self.given_up.add(data)

    def on_propose(self, node_id: int, data: bytes, stamp: int) -> None:
        if data in self.proposed:
            self.repeated.add(data)
            self.given_up.discard(data)
        self.proposed.add(data)
        if stamp > 0:
            self.pending.setdefault(node_id, {})[data] = stamp

    def forget_proposals(self, node_id: int) -> None:
        """The node restarted or installed a snapshot: its pending proposals can no longer be judged."""
        self.pending.pop(node_id, None)

    def on_restore(self, node: SimNode, snapshot: Snapshot) -> None:
        self.forget_proposals(node.id)
        for index, data in decode_history(snapshot.data):
            seen = self.applied.get(index)
            assert seen is None or seen == (EntryType.NORMAL, data), f"snapshot on {node.id} disagrees at {index}"

    def on_read_request(self, context: bytes) -> None:
        self.read_floors[context] = max(self.applied, default=0)

    def on_read_state(self, node: SimNode, rs: ReadState) -> None:
        # Linearizable reads (thesis §6.4): the read index covers every entry committed before the
        # read was requested (anything applied anywhere was committed).
        floor = self.read_floors.get(rs.context)
        assert floor is None or rs.index >= floor, f"stale read {rs} on {node.id}: {floor} was committed"

    def on_step(self, nodes: Iterable[SimNode]) -> None:
        for node in nodes:
            r = node.raft
            if r.role is not Role.LEADER:
                continue
            seen = self.leaders.setdefault(r.term, r.id)
            assert seen == r.id, f"two leaders in term {r.term}: {seen} and {r.id}"
            if self._completeness_checked.get(r.id) != r.term:
                self._completeness_checked[r.id] = r.term
                self._check_leader_completeness(node)

    def _check_leader_completeness(self, node: SimNode) -> None:
        # §5.4: a leader's log holds every entry committed (here: applied anywhere) before its term.
        log = node.raft.log
        first = log.first_index()
        for index, (kind, data) in self.applied.items():
            if index < first:
                continue
            entry = log.slice(index, index + 1, None) if index <= log.last_index() else []
            assert entry and (entry[0].type, entry[0].data) == (kind, data), (
                f"leader {node.id} (term {node.raft.term}) lacks committed entry {index}"
            )


class Cluster:
    """N nodes on a simulated network. All randomness comes from `seed`."""

    def __init__(
        self,
        voters: Sequence[int],
        learners: Sequence[int] = (),
        *,
        seed: int = 0,
        checker: Checker | None = None,
        trace_limit: int = 0,
        **config: Any,
    ) -> None:
        self.rng = random.Random(seed)
        self.config = config
        self.checker = checker
        self.nodes: dict[int, SimNode] = {}
        self.queue: list[Message] = []
        self.drop_rate = 0.0
        self.down: dict[int, None] = {}  # crashed or isolated nodes: no traffic in or out
        self.blocked: dict[tuple[int, int], None] = {}  # (from, to) links that drop everything
        self.trace: deque[str] = deque(maxlen=trace_limit or None)
        self.tracing = trace_limit > 0
        self.ready_observers: list[Callable[[int, Ready], None]] = []  # called with each Ready taken
        conf = ConfState.of(list(voters), list(learners))
        for node_id in sorted(conf.voters + conf.learners):
            self._start(node_id, bootstrap=conf)

    # Nodes.

    def _make_config(self, node_id: int, applied: int = 0) -> RaftConfig:
        rng = random.Random(self.rng.getrandbits(64))
        return RaftConfig(id=node_id, rng=rng, applied=applied, **self.config)

    def _start(self, node_id: int, bootstrap: ConfState | None) -> SimNode:
        node = SimNode(node_id, self._make_config(node_id))
        node.storage = SimStorage(node)
        if bootstrap is not None:
            node.storage.apply_snapshot(Snapshot(SnapshotMeta(BOOTSTRAP_INDEX, 1, bootstrap)))
            node.applied_index = BOOTSTRAP_INDEX
            node.conf_state = bootstrap
        node.rawnode = RawNode(node.config, node.storage)
        self.nodes[node_id] = node
        return node

    def add_node(self, node_id: int) -> SimNode:
        """Start a joining node with an empty log; it learns the membership from a snapshot."""
        return self._start(node_id, bootstrap=None)

    def restart(self, node_id: int) -> None:
        """Crash and restart: keep storage, lose volatile state, replay from the last snapshot."""
        old = self.nodes[node_id]
        snapshot = MemoryStorage.snapshot(old.storage)
        node = SimNode(node_id, self._make_config(node_id, applied=snapshot.meta.index))
        node.storage = old.storage
        node.storage._node = node
        node.history = decode_history(snapshot.data)
        node.applied_index = snapshot.meta.index
        node.conf_state = snapshot.meta.conf_state
        node.rawnode = RawNode(node.config, node.storage)
        self.nodes[node_id] = node
        if self.checker:
            self.checker.forget_proposals(node_id)
        self._note(f"restart {node_id}")

    def raft(self, node_id: int) -> Raft:
        return self.nodes[node_id].raft

    def leader(self) -> int:
        """The leader with the highest term, or NONE."""
        best = (0, NONE)
        for node in self.nodes.values():
            r = node.raft
            if r.role is Role.LEADER and r.term > best[0]:
                best = (r.term, r.id)
        return best[1]

    # Driving.

    def tick(self, *node_ids: int) -> None:
        for node_id in node_ids or tuple(self.nodes):
            self.nodes[node_id].rawnode.tick()

    def propose(self, node_id: int, data: bytes) -> bool:
        try:
            stamp = self.nodes[node_id].rawnode.propose(data)
        except ProposalDropped:
            return False
        if self.checker:
            self.checker.on_propose(node_id, data, stamp)
        return True

    def propose_conf_change(self, node_id: int, change: ConfChange) -> bool:
        try:
            self.nodes[node_id].rawnode.propose_conf_change(change)
        except ProposalDropped:
            return False
        return True

    def read_index(self, node_id: int, context: bytes) -> bool:
        if self.checker:
            self.checker.on_read_request(context)
        try:
            self.nodes[node_id].rawnode.read_index(context)
        except ProposalDropped:
            return False
        return True

    def campaign(self, node_id: int) -> None:
        self.nodes[node_id].rawnode.campaign()

    def elect(self, node_id: int) -> None:
        """Make `node_id` leader on a healthy network."""
        self.campaign(node_id)
        self.stabilize()
        assert self.raft(node_id).role is Role.LEADER, f"{node_id} failed to become leader"

    def process_ready(self, node_id: int) -> bool:
        node = self.nodes[node_id]
        rn = node.rawnode
        if not rn.has_ready():
            return False
        rd = rn.ready()
        for observe in self.ready_observers:
            observe(node_id, rd)
        # 1. Persist before anything leaves the node.
        if rd.snapshot is not None:
            node.storage.apply_snapshot(rd.snapshot)
        if rd.entries:
            node.storage.append(rd.entries)
            if self.checker:
                self.checker.on_persist(node, rd.entries)
        if rd.hard_state is not None:
            node.storage.set_hard_state(rd.hard_state)
        # 2. Send.
        for m in rd.messages:
            self.send(m)
        # 3. Apply.
        if rd.snapshot is not None:
            if self.checker:
                self.checker.on_restore(node, rd.snapshot)
            node.history = decode_history(rd.snapshot.data)
            node.applied_index = rd.snapshot.meta.index
            node.conf_state = rd.snapshot.meta.conf_state
        for e in rd.committed_entries:
            if self.checker:
                self.checker.on_apply(node, e)
            node.applied_index = e.index
            if e.type is EntryType.CONF_CHANGE:
                node.conf_state = rn.apply_conf_change(ConfChange.decode(e.data))
            elif e.data:
                node.history.append((e.index, e.data))
        node.read_states.extend(rd.read_states)
        if self.checker:
            for rs in rd.read_states:
                self.checker.on_read_state(node, rs)
        if self.tracing and rd.committed_entries:
            self._note(f"{node_id} applied {describe_entries(rd.committed_entries)}")
        # 4. Advance.
        rn.advance(rd)
        return True

    def process_all(self) -> bool:
        progressed = False
        for node_id in tuple(self.nodes):
            progressed |= self.process_ready(node_id)
        if self.checker:
            self.checker.on_step(self.nodes.values())
        return progressed

    def stabilize(self, max_rounds: int = 10_000) -> None:
        """Process Readies and deliver messages until the cluster is quiet."""
        for _ in range(max_rounds):
            progressed = self.process_all()
            if self.queue:
                self.deliver_all()
                progressed = True
            if not progressed:
                return
        raise AssertionError(f"cluster did not stabilize within {max_rounds} rounds")

    # Network.

    def _cut(self, frm: int, to: int) -> bool:
        return frm in self.down or to in self.down or (frm, to) in self.blocked

    def send(self, m: Message) -> None:
        if self._cut(m.frm, m.to):
            self._note(f"cut {describe_message(m)}")
            self._report_failure(m)
            return
        if self.drop_rate and self.rng.random() < self.drop_rate:
            self._note(f"drop {describe_message(m)}")
            if m.type is MT.SNAP:
                self._report_failure(m)
            return
        self.queue.append(m)

    def _report_failure(self, m: Message) -> None:
        sender = self.nodes.get(m.frm)
        if sender is None:
            return
        if m.type is MT.SNAP:
            sender.rawnode.report_snapshot(m.to, ok=False)
        sender.rawnode.report_unreachable(m.to)

    def deliver(self, m: Message) -> None:
        node = self.nodes.get(m.to)
        if node is None or self._cut(m.frm, m.to):
            self._note(f"lost {describe_message(m)}")
            if m.type is MT.SNAP:
                self._report_failure(m)
            return
        self._note(describe_message(m))
        try:
            node.rawnode.step(m)
        except ProposalDropped:
            pass
        if m.type is MT.SNAP and m.frm in self.nodes:
            self.nodes[m.frm].rawnode.report_snapshot(m.to, ok=True)

    def deliver_all(self) -> int:
        """Deliver everything in flight, in order (including nothing sent meanwhile)."""
        pending, self.queue = self.queue, []
        for m in pending:
            self.deliver(m)
        return len(pending)

    def deliver_some(self, fraction: float) -> None:
        """Deliver a random subset of in-flight messages in random order; the rest stay queued."""
        if not self.queue:
            return
        count = max(1, int(len(self.queue) * fraction))
        picked = sorted(self.rng.sample(range(len(self.queue)), count))
        chosen = [self.queue[i] for i in picked]
        for i in reversed(picked):
            del self.queue[i]
        self.rng.shuffle(chosen)
        for m in chosen:
            self.deliver(m)

    def isolate(self, node_id: int) -> None:
        self.down[node_id] = None
        self._note(f"isolate {node_id}")

    def partition(self, *groups: Sequence[int]) -> None:
        """Block traffic between different groups (nodes in no group keep full connectivity)."""
        for a_group in groups:
            for b_group in groups:
                if a_group is b_group:
                    continue
                for a in a_group:
                    for b in b_group:
                        self.blocked[(a, b)] = None
        self._note(f"partition {[list(g) for g in groups]}")

    def heal(self) -> None:
        self.down.clear()
        self.blocked.clear()
        self.drop_rate = 0.0
        self._note("heal")

    def compact(self, node_id: int) -> int:
        """Snapshot `node_id` at its applied index and drop the log before it; returns the index."""
        node = self.nodes[node_id]
        index = node.applied_index
        if index > MemoryStorage.snapshot(node.storage).meta.index:
            node.storage.create_snapshot(index, node.conf_state, encode_history(node.history))
        if index > node.storage.first_index() - 1:
            node.storage.compact(index)
        self._note(f"compact {node_id} to {index}")
        return index

    def _note(self, line: str) -> None:
        if self.tracing:
            self.trace.append(line)
