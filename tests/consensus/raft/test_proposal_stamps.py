"""Proposal stamps: a proposal carries the term it entered the core in, keeps it when forwarded, and a
leader of a later term drops it; so a node that applies an entry of a later term first may give it up
(consensus/proposal_stamps.py). The simulation (test_simulation.py) checks that verdict in every world."""

from __future__ import annotations

import pytest
from corral.consensus.raft.errors import ProposalDropped
from corral.consensus.raft.testing import Checker, Cluster
from corral.consensus.raft.types import Entry, Message, MessageType, Role

from tests.consensus.raft.helpers import new_raft

MT = MessageType
CLASSIC = {"check_quorum": False, "pre_vote": False}  # elections on demand, no leader leases


def _prop(frm: int, to: int, stamp: int, data: bytes = b"x") -> Message:
    return Message(MT.PROP, to=to, frm=frm, entries=(Entry(stamp, 0, data),))


def _cluster(seed: int) -> Cluster:
    return Cluster([1, 2, 3], seed=seed, checker=Checker(), **CLASSIC)


def _hold_proposals(c: Cluster) -> list[Message]:
    """Take the PROP messages in flight off the network (to deliver them later, or never)."""
    held = [m for m in c.queue if m.type is MT.PROP]
    c.queue = [m for m in c.queue if m.type is not MT.PROP]
    return held


def test_a_local_proposal_is_stamped_with_the_current_term() -> None:
    c = _cluster(1)
    c.elect(1)
    c.elect(2)
    c.elect(1)  # term 3: a stamp of 0 or 1 would not pass for the current term
    term = c.raft(1).term
    assert term == 3
    assert c.nodes[1].rawnode.propose(b"on-leader") == term
    assert c.raft(1).log.last_term() == term
    assert c.nodes[2].rawnode.propose(b"on-follower") == term
    c.process_ready(2)
    (forwarded,) = _hold_proposals(c)
    assert (forwarded.frm, forwarded.to, forwarded.term) == (2, 1, 0)  # still a request, local to its handler
    assert forwarded.entries == (Entry(term, 0, b"on-follower"),)


def test_forwarding_keeps_the_original_stamp() -> None:
    r = new_raft(2)
    r.become_follower(5, 1)
    r.step(_prop(frm=3, to=2, stamp=4))  # stamped by node 3 at term 4, reaching us at term 5
    assert r.read_messages() == [_prop(frm=3, to=1, stamp=4)]


def test_a_leader_drops_a_forwarded_proposal_stamped_at_an_older_term() -> None:
    r = new_raft(1)
    r.become_candidate()
    r.become_candidate()
    r.become_leader()
    assert (r.role, r.term) == (Role.LEADER, 2)
    last = r.log.last_index()
    r.step(_prop(frm=2, to=1, stamp=1))
    assert r.log.last_index() == last  # dropped silently: nothing appended, nothing raised
    r.step(_prop(frm=2, to=1, stamp=2, data=b"current"))
    assert r.log.last_index() == last + 1 and r.log.last_term() == 2
    r.step(_prop(frm=2, to=1, stamp=0, data=b"unstamped"))  # as a direct Raft.step in other tests
    assert r.log.last_index() == last + 2
    with pytest.raises(ProposalDropped, match="stale"):
        r.step(_prop(frm=1, to=0, stamp=1))  # a local caller hears why


def test_a_proposal_held_up_until_its_target_leads_again_is_dropped() -> None:
    """Node 2 forwards a proposal to leader 1 (term t0); the message is delayed. Node 3 then leads, and 1
    leads again: node 2 has meanwhile applied entries of later terms, so its driver has answered "not
    applied". The late message must not be appended by 1 now, though 1 is its addressee and leads."""
    c = _cluster(2)
    c.elect(1)
    t0 = c.raft(1).term
    assert c.propose(2, b"late")
    c.process_ready(2)
    held = _hold_proposals(c)
    assert len(held) == 1
    c.elect(3)
    c.elect(1)
    c.stabilize()
    assert c.raft(1).term > t0 and c.raft(1).role is Role.LEADER
    applied = c.raft(2).log.applied
    assert c.raft(2).log.term(applied) > t0  # node 2 applied an entry of a later term first
    assert b"late" in c.checker.given_up  # type: ignore[union-attr]
    for m in held:
        c.deliver(m)
    c.stabilize()
    assert c.propose(2, b"after")
    c.stabilize()
    for node in c.nodes.values():
        assert b"late" not in node.data()
        assert b"after" in node.data()


def test_a_forwarded_proposal_the_new_leader_holds_is_applied_before_its_first_entry() -> None:
    """Leader 1 appends node 2's proposal and replicates it to 3 only, then dies. 3 wins and commits
    it under its own first entry: node 2 applies it (the driver answers it normally), nothing is given up."""
    c = _cluster(3)
    c.elect(1)
    assert c.propose(2, b"forwarded")
    c.process_ready(2)
    c.deliver_all()  # the proposal reaches 1
    c.partition([1, 3], [2])  # the leader's appends reach 3, not 2
    c.stabilize()
    assert c.raft(3).log.last_index() == c.raft(1).log.last_index() > c.raft(2).log.last_index()
    c.heal()
    c.isolate(1)
    c.elect(3)
    c.stabilize()
    assert b"forwarded" in c.nodes[2].data()
    assert c.checker.given_up == set()  # type: ignore[union-attr]


def test_a_deposed_leaders_own_proposal_is_given_up_once_the_new_term_commits() -> None:
    c = _cluster(4)
    c.elect(1)
    t0 = c.raft(1).term
    c.isolate(1)
    assert c.propose(1, b"stranded")  # appended at t0 on 1 only
    c.process_ready(1)
    assert c.raft(1).log.last_term() == t0
    c.heal()
    c.queue.clear()  # what 1 sent while cut off is lost
    c.isolate(1)
    c.elect(2)
    c.heal()
    c.tick(2)  # a heartbeat: 1 hears of the new term, then drops its tail for the new leader's entries
    c.stabilize()
    assert c.raft(1).role is Role.FOLLOWER
    assert b"stranded" in c.checker.given_up  # type: ignore[union-attr]
    assert all(b"stranded" not in node.data() for node in c.nodes.values())
