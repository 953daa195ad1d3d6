"""Shared helpers for Raft core tests: build Raft instances and pass messages between them directly."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from corral.consensus.raft.config import RaftConfig
from corral.consensus.raft.raft import Raft
from corral.consensus.raft.storage import MemoryStorage
from corral.consensus.raft.types import Entry, HardState, Message, MessageType

MT = MessageType


def make_storage(
    voters: Sequence[int] = (1, 2, 3),
    terms: Sequence[int] = (),
    learners: Sequence[int] = (),
    hard_state: HardState | None = None,
) -> MemoryStorage:
    """Storage whose log holds one entry per element of `terms` (index 1, 2, ...)."""
    storage = MemoryStorage.with_members(voters, learners)
    storage.append([Entry(term, i + 1) for i, term in enumerate(terms)])
    if hard_state is not None:
        storage.set_hard_state(hard_state)
    return storage


def new_raft(
    node_id: int,
    voters: Sequence[int] = (1, 2, 3),
    *,
    storage: MemoryStorage | None = None,
    terms: Sequence[int] = (),
    learners: Sequence[int] = (),
    election_tick: int = 10,
    heartbeat_tick: int = 1,
    pre_vote: bool = False,
    check_quorum: bool = False,
    seed: int | None = None,
    **config: Any,
) -> Raft:
    """A Raft node; classic Raft (no PreVote, no CheckQuorum) unless asked otherwise."""
    if storage is None:
        storage = make_storage(voters, terms, learners)
    cfg = RaftConfig(
        id=node_id,
        rng=random.Random(node_id if seed is None else seed),
        election_tick=election_tick,
        heartbeat_tick=heartbeat_tick,
        pre_vote=pre_vote,
        check_quorum=check_quorum,
        **config,
    )
    return Raft(cfg, storage)


def types_of(msgs: Iterable[Message]) -> list[MT]:
    return [m.type for m in msgs]


def elapse_election(r: Raft) -> None:
    """Tick until the node's randomized election timeout fires."""
    for _ in range(2 * r.election_timeout):
        r.tick()


class Network:
    """Raft instances exchanging messages synchronously (no storage writes, no Ready)."""

    def __init__(self, *rafts: Raft) -> None:
        self.peers = {r.id: r for r in rafts}
        self.dropped: dict[tuple[int, int], None] = {}
        self.isolated: dict[int, None] = {}
        self.ignored: dict[MT, None] = {}

    def cut(self, a: int, b: int) -> None:
        self.dropped[(a, b)] = None
        self.dropped[(b, a)] = None

    def isolate(self, node_id: int) -> None:
        self.isolated[node_id] = None

    def recover(self) -> None:
        self.dropped.clear()
        self.isolated.clear()
        self.ignored.clear()

    def ignore(self, kind: MT) -> None:
        self.ignored[kind] = None

    def _passes(self, m: Message) -> bool:
        return (
            m.to in self.peers
            and (m.frm, m.to) not in self.dropped
            and m.frm not in self.isolated
            and m.to not in self.isolated
            and m.type not in self.ignored
        )

    def send(self, *msgs: Message) -> None:
        """Deliver `msgs` and everything they cause, until quiet."""
        queue = list(msgs)
        while queue:
            m = queue.pop(0)
            if not self._passes(m):
                continue
            peer = self.peers[m.to]
            peer.step(m)
            queue.extend(peer.read_messages())

    def flush(self) -> None:
        """Deliver whatever the peers have queued."""
        msgs: list[Message] = []
        for r in self.peers.values():
            msgs.extend(r.read_messages())
        self.send(*msgs)

    def campaign(self, node_id: int) -> None:
        self.send(Message(MT.HUP, to=node_id, frm=node_id))

    def propose(self, node_id: int, data: bytes = b"data") -> None:
        self.send(Message(MT.PROP, to=node_id, frm=node_id, entries=(Entry(0, 0, data),)))

    def tick(self, node_id: int, n: int = 1) -> None:
        r = self.peers[node_id]
        for _ in range(n):
            r.tick()
            self.flush()


def new_network(*ids: int, **kw: Any) -> Network:
    ids = ids or (1, 2, 3)
    return Network(*(new_raft(i, ids, **kw) for i in ids))
