"""Leadership transfer (thesis §3.10): catch the transferee up, then TIMEOUT_NOW; abort on timeout."""

from __future__ import annotations

import pytest
from corral.consensus.raft.errors import ProposalDropped
from corral.consensus.raft.testing import Cluster
from corral.consensus.raft.types import NONE, MessageType, Role

MT = MessageType


def cluster(voters: list[int] | None = None, learners: list[int] | None = None) -> Cluster:
    # Default options: PreVote and CheckQuorum on, so the transfer must bypass the leader lease.
    c = Cluster(voters or [1, 2, 3], learners or [], seed=5, trace_limit=500)
    c.elect(1)
    return c


def test_transfer_to_an_up_to_date_follower() -> None:
    c = cluster()
    c.nodes[1].rawnode.transfer_leader(2)
    c.stabilize()
    assert c.raft(2).role is Role.LEADER and c.raft(2).term == 2
    assert (c.raft(1).role, c.raft(1).lead) == (Role.FOLLOWER, 2)
    assert any("TIMEOUT_NOW" in line for line in c.trace)


def test_transfer_to_a_lagging_follower_catches_it_up_first() -> None:
    c = cluster()
    c.isolate(3)
    for i in range(5):
        c.propose(1, b"%d" % i)
        c.stabilize()
    c.heal()
    c.nodes[1].rawnode.transfer_leader(3)
    c.stabilize()
    assert c.raft(1).lead_transferee == 3 and c.raft(3).role is Role.FOLLOWER  # 3 is behind
    c.tick(1)  # the heartbeat reply resumes replication to 3; once it matches, TIMEOUT_NOW
    c.stabilize()
    r3 = c.raft(3)
    assert r3.role is Role.LEADER
    assert [d for d in c.nodes[3].data()] == [b"0", b"1", b"2", b"3", b"4"]


def test_transfer_requested_on_a_follower_is_forwarded_to_the_leader() -> None:
    c = cluster()
    c.nodes[2].rawnode.transfer_leader(2)
    c.stabilize()
    assert c.leader() == 2


def test_proposals_are_refused_during_a_transfer_and_resume_after_it_times_out() -> None:
    c = cluster()
    c.isolate(3)
    c.nodes[1].rawnode.transfer_leader(3)
    c.stabilize()
    assert c.raft(1).lead_transferee == 3
    with pytest.raises(ProposalDropped):
        c.nodes[1].rawnode.propose(b"refused")
    c.heal()
    c.isolate(3)  # keep 3 away but let 1 and 2 talk
    for _ in range(c.raft(1).election_timeout):
        c.tick(1)
        c.stabilize()
    assert c.raft(1).lead_transferee == NONE and c.raft(1).role is Role.LEADER
    assert c.propose(1, b"accepted")


@pytest.mark.parametrize("target", [1, 4, 9])
def test_transfer_to_self_a_learner_or_a_stranger_is_ignored(target: int) -> None:
    c = cluster(learners=[4])
    c.nodes[1].rawnode.transfer_leader(target)
    c.stabilize()
    assert c.leader() == 1 and c.raft(1).term == 1 and c.raft(1).lead_transferee == NONE


def test_a_new_transfer_replaces_one_in_progress() -> None:
    c = cluster()
    c.isolate(3)
    c.nodes[1].rawnode.transfer_leader(3)
    c.stabilize()
    c.nodes[1].rawnode.transfer_leader(2)
    c.stabilize()
    assert c.leader() == 2
