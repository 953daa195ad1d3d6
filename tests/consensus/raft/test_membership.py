"""Membership changes one node at a time (thesis §4.1): voters, learners, promotion, removal."""

from __future__ import annotations

import pytest
from corral.consensus.raft.confchange import ConfChangeError, apply_change
from corral.consensus.raft.testing import Cluster
from corral.consensus.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Role,
)

from tests.consensus.raft.helpers import make_storage, new_raft

MT = MessageType
ADD, REMOVE, LEARNER = ConfChangeType.ADD_VOTER, ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER
UPDATE = ConfChangeType.UPDATE_NODE


def change(kind: ConfChangeType, node: int) -> ConfChange:
    return ConfChange(kind, node)


def run(c: Cluster, ticks: int = 3) -> None:
    for _ in range(ticks):
        c.tick()
        c.stabilize()


def committed_everywhere(c: Cluster, data: bytes, nodes: list[int]) -> bool:
    return all(data in c.nodes[n].data() for n in nodes)


@pytest.mark.parametrize(
    ("conf", "cc", "expected"),
    [
        (ConfState.of([1, 2]), change(ADD, 3), ConfState.of([1, 2, 3])),
        (ConfState.of([1, 2]), change(ADD, 2), ConfState.of([1, 2])),
        (ConfState.of([1, 2]), change(REMOVE, 2), ConfState.of([1])),
        (ConfState.of([1, 2]), change(REMOVE, 7), ConfState.of([1, 2])),
        (ConfState.of([1, 2]), change(LEARNER, 3), ConfState.of([1, 2], [3])),
        (ConfState.of([1, 2], [3]), change(ADD, 3), ConfState.of([1, 2, 3])),  # promotion
        (ConfState.of([1, 2], [3]), change(REMOVE, 3), ConfState.of([1, 2])),
        (ConfState.of([1, 2]), change(LEARNER, 2), ConfState.of([1], [2])),  # demotion
        (ConfState.of([1, 2], [3]), change(UPDATE, 3), ConfState.of([1, 2], [3])),  # metadata only
    ],
)
def test_apply_change(conf: ConfState, cc: ConfChange, expected: ConfState) -> None:
    assert apply_change(conf, cc) == expected


def test_removing_the_last_voter_is_an_error() -> None:
    with pytest.raises(ConfChangeError):
        apply_change(ConfState.of([1], [2]), change(REMOVE, 1))


def test_updating_a_node_that_is_not_a_member_is_an_error() -> None:
    with pytest.raises(ConfChangeError):
        apply_change(ConfState.of([1, 2]), change(UPDATE, 3))


def test_updating_the_leader_neither_removes_it_nor_blocks_proposals() -> None:
    c = Cluster([1, 2, 3], seed=17)
    c.elect(1)
    c.propose_conf_change(1, ConfChange(UPDATE, 1, b"new metadata"))
    assert c.propose(1, b"still taken")
    c.stabilize()
    assert c.leader() == 1 and c.nodes[2].conf_state == ConfState.of([1, 2, 3])
    assert committed_everywhere(c, b"still taken", [1, 2, 3])


def test_conf_change_round_trips_through_entry_data() -> None:
    cc = ConfChange(ConfChangeType.ADD_LEARNER, 2**40, b"peer-url")
    assert ConfChange.decode(cc.encode()) == cc


def test_add_voter_joins_by_snapshot_and_counts_towards_the_quorum() -> None:
    c = Cluster([1, 2, 3], seed=11, trace_limit=2000)
    c.elect(1)
    c.propose(1, b"before")
    assert c.propose_conf_change(1, change(ADD, 4))
    c.stabilize()
    assert all(c.nodes[n].conf_state == ConfState.of([1, 2, 3, 4]) for n in (1, 2, 3))
    c.add_node(4)
    run(c)
    assert c.nodes[4].conf_state == ConfState.of([1, 2, 3, 4])
    assert c.nodes[4].data() == [b"before"]
    assert any(" SNAP " in line for line in c.trace)
    # Four voters: a quorum is three. With 3 and 4 away, nothing commits.
    c.isolate(3)
    c.isolate(4)
    c.propose(1, b"needs three")
    run(c)
    assert b"needs three" not in c.nodes[1].data()
    c.heal()
    run(c)
    assert committed_everywhere(c, b"needs three", [1, 2, 3, 4])


def test_remove_voter_shrinks_the_quorum() -> None:
    c = Cluster([1, 2, 3], seed=12)
    c.elect(1)
    c.propose_conf_change(1, change(REMOVE, 3))
    c.stabilize()
    assert c.nodes[1].conf_state == ConfState.of([1, 2])
    assert 3 not in c.raft(1).progress
    c.isolate(2)
    c.propose(1, b"needs both")
    run(c)
    assert b"needs both" not in c.nodes[1].data()
    c.heal()
    c.isolate(3)
    run(c)
    assert committed_everywhere(c, b"needs both", [1, 2])


def test_removed_leader_hands_off_and_steps_down() -> None:
    c = Cluster([1, 2, 3], seed=13, trace_limit=200)
    c.elect(1)
    c.propose_conf_change(1, change(REMOVE, 1))
    # Until the removal is applied the leader takes no more proposals: its log must not outgrow the
    # voters that stay.
    assert not c.propose(1, b"refused")
    c.stabilize()  # no ticks: the hand-off is immediate
    old = c.raft(1)
    assert (old.role, old.term) == (Role.FOLLOWER, 1) and not old.promotable()
    assert any("TIMEOUT_NOW" in line for line in c.trace)
    leader = c.leader()
    assert leader in (2, 3) and c.raft(leader).term == 2
    assert c.nodes[leader].conf_state == ConfState.of([2, 3])
    c.propose(leader, b"after removal")
    c.stabilize()
    assert committed_everywhere(c, b"after removal", [2, 3])


def test_removed_leader_whose_successor_lags_still_lets_the_rest_elect() -> None:
    c = Cluster([1, 2, 3], seed=19)
    c.elect(1)
    c.isolate(3)
    c.propose_conf_change(1, change(REMOVE, 1))
    c.stabilize()  # commits with 1 and 2; 2 gets TIMEOUT_NOW and wins
    c.heal()
    run(c, ticks=30)
    assert c.leader() in (2, 3)
    assert all(c.nodes[n].conf_state == ConfState.of([2, 3]) for n in (2, 3))


def test_removed_follower_cannot_disrupt_the_cluster() -> None:
    c = Cluster([1, 2, 3], seed=14)
    c.elect(1)
    c.isolate(3)  # 3 never learns of its removal
    c.propose_conf_change(1, change(REMOVE, 3))
    c.stabilize()
    c.heal()
    run(c, ticks=100)
    assert c.leader() == 1 and c.raft(1).term == 1


def test_learner_receives_the_log_but_neither_votes_nor_counts() -> None:
    c = Cluster([1, 2, 3], seed=15)
    c.elect(1)
    c.propose_conf_change(1, change(LEARNER, 4))
    c.stabilize()
    c.add_node(4)
    c.propose(1, b"for everyone")
    run(c)
    learner = c.raft(4)
    assert learner.is_learner and b"for everyone" in c.nodes[4].data()
    c.isolate(2)
    c.isolate(3)
    c.propose(1, b"learner is not a quorum")
    run(c)
    assert c.raft(4).log.last_index() == c.raft(1).log.last_index()  # replicated to the learner ...
    assert b"learner is not a quorum" not in c.nodes[1].data()  # ... but not committed
    assert learner.role is Role.FOLLOWER


def test_promote_learner_to_voter() -> None:
    c = Cluster([1, 2, 3], [4], seed=16)
    c.elect(1)
    c.propose_conf_change(1, change(ADD, 4))
    c.stabilize()
    assert all(c.nodes[n].conf_state == ConfState.of([1, 2, 3, 4]) for n in c.nodes)
    assert not c.raft(4).is_learner and c.raft(4).promotable()
    c.nodes[1].rawnode.transfer_leader(4)
    c.stabilize()
    assert c.leader() == 4


def test_only_one_conf_change_at_a_time() -> None:
    c = Cluster([1, 2, 3], seed=17)
    c.elect(1)
    c.propose_conf_change(1, change(ADD, 4))
    c.propose_conf_change(1, change(ADD, 5))  # the first is not applied yet: becomes a no-op
    log = c.raft(1).log
    kinds = [e.type for e in log.entries(log.last_index() - 1, None)]
    assert kinds == [EntryType.CONF_CHANGE, EntryType.NORMAL]
    c.stabilize()
    assert c.nodes[1].conf_state == ConfState.of([1, 2, 3, 4])
    c.propose_conf_change(1, change(ADD, 5))  # now it may go
    c.stabilize()
    assert c.nodes[1].conf_state == ConfState.of([1, 2, 3, 4, 5])


def test_a_change_leaving_no_voters_is_not_proposed() -> None:
    c = Cluster([1], seed=18)
    c.elect(1)
    c.propose_conf_change(1, change(REMOVE, 1))
    c.stabilize()
    assert c.nodes[1].conf_state == ConfState.of([1]) and c.leader() == 1


def test_new_leader_holds_conf_changes_until_earlier_entries_are_applied() -> None:
    # An uncommitted conf change from an earlier term may sit in the log: until everything the new
    # leader holds is applied, it cannot know the membership, so it refuses new changes.
    cc = Entry(1, 2, change(ADD, 4).encode(), EntryType.CONF_CHANGE)
    storage = make_storage(hard_state=HardState(term=1, commit=1))
    storage.append([Entry(1, 1), cc])
    r = new_raft(1, storage=storage)
    r.become_candidate()
    r.become_leader()
    assert r.pending_conf_index == 2
    r.step(Message(MT.PROP, frm=1, entries=(Entry(0, 0, change(ADD, 5).encode(), EntryType.CONF_CHANGE),)))
    assert r.log.entries(r.log.last_index(), None)[0].type is EntryType.NORMAL


def test_node_with_unapplied_committed_conf_change_does_not_campaign() -> None:
    cc = Entry(1, 1, change(REMOVE, 1).encode(), EntryType.CONF_CHANGE)
    storage = make_storage(hard_state=HardState(term=1, commit=1))
    storage.append([cc])
    r = new_raft(1, storage=storage)
    r.step(Message(MT.HUP, frm=1))
    assert r.role is Role.FOLLOWER
    r.log.applied_to(1)
    r.apply_conf_change(change(REMOVE, 1))
    r.step(Message(MT.HUP, frm=1))
    assert r.role is Role.FOLLOWER  # removed: not promotable
