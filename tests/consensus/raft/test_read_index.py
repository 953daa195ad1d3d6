"""ReadIndex (thesis §6.4): linearizable reads without writing to the log."""

from __future__ import annotations

from typing import Any

import pytest
from corral.consensus.raft.config import ReadOnlyOption
from corral.consensus.raft.errors import ProposalDropped
from corral.consensus.raft.testing import Cluster
from corral.consensus.raft.types import Message, MessageType, ReadState, Role

from tests.consensus.raft.helpers import new_network

MT = MessageType


def cluster(**kw: Any) -> Cluster:
    c = Cluster([1, 2, 3], seed=3, **kw)
    c.elect(1)
    c.propose(1, b"x")
    c.stabilize()
    return c


def test_leader_answers_a_read_after_a_quorum_acknowledges_a_heartbeat() -> None:
    c = cluster()
    leader = c.nodes[1]
    commit = leader.raft.log.committed
    leader.rawnode.read_index(b"r1")
    rd = leader.rawnode.ready()
    assert rd.read_states == ()
    beats = [m for m in rd.messages if m.type is MT.HEARTBEAT]
    assert sorted(m.to for m in beats) == [2, 3] and all(m.context == b"r1" for m in beats)
    for m in rd.messages:
        c.send(m)
    leader.rawnode.advance(rd)
    c.stabilize()
    assert leader.read_states == [ReadState(commit, b"r1")]


def test_read_is_not_answered_without_a_quorum() -> None:
    c = cluster(check_quorum=False)
    c.isolate(2)
    c.isolate(3)
    c.nodes[1].rawnode.read_index(b"r1")
    for _ in range(30):
        c.tick(1)
        c.stabilize()
    assert c.nodes[1].read_states == []


def test_follower_read_is_forwarded_and_answered_by_the_leader() -> None:
    c = cluster()
    follower = c.nodes[2]
    follower.rawnode.read_index(b"via-2")
    c.stabilize()
    assert follower.read_states == [ReadState(c.raft(1).log.committed, b"via-2")]
    assert c.nodes[1].read_states == []


def test_new_leader_defers_reads_until_an_entry_of_its_term_commits() -> None:
    net = new_network(1, 2, 3)
    net.campaign(1)
    net.ignore(MT.APP)  # 2 wins term 2 but cannot replicate its no-op yet
    net.campaign(2)
    r2 = net.peers[2]
    assert (r2.role, r2.term, r2.log.committed) == (Role.LEADER, 2, 1)
    r2.step(Message(MT.READ_INDEX, frm=2, context=b"early"))
    assert r2.read_messages() == [] and r2.read_states == []
    assert len(r2.pending_read_index_messages) == 1
    net.recover()
    net.tick(2)  # heartbeat -> replies -> the no-op is sent and commits -> the read proceeds
    assert r2.log.committed == 2
    assert r2.read_states == [ReadState(2, b"early")]


def test_an_ack_for_a_later_read_releases_earlier_ones() -> None:
    net = new_network(1, 2, 3)
    net.campaign(1)
    r1 = net.peers[1]
    net.isolate(2)
    net.isolate(3)
    r1.step(Message(MT.READ_INDEX, frm=1, context=b"a"))
    r1.step(Message(MT.READ_INDEX, frm=1, context=b"b"))
    r1.read_messages()
    r1.step(Message(MT.HEARTBEAT_RESP, to=1, frm=2, term=1, context=b"b"))
    assert [rs.context for rs in r1.read_states] == [b"a", b"b"]


def test_lease_based_read_answers_at_once() -> None:
    c = cluster(read_only_option=ReadOnlyOption.LEASE_BASED, check_quorum=True)
    leader = c.nodes[1]
    leader.rawnode.read_index(b"fast")
    rd = leader.rawnode.ready()
    assert rd.read_states == (ReadState(leader.raft.log.committed, b"fast"),)
    assert not any(m.context for m in rd.messages)
    leader.rawnode.advance(rd)


def test_single_voter_answers_at_once() -> None:
    c = Cluster([1], seed=1)
    c.elect(1)
    c.nodes[1].rawnode.read_index(b"solo")
    c.stabilize()
    assert c.nodes[1].read_states == [ReadState(2, b"solo")]


def test_read_without_a_leader_or_context_is_refused() -> None:
    c = Cluster([1, 2, 3], seed=1)
    with pytest.raises(ProposalDropped):
        c.nodes[2].rawnode.read_index(b"nobody leads")
    with pytest.raises(ValueError):
        c.nodes[2].rawnode.read_index(b"")
