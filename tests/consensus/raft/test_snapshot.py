"""Snapshots: a follower that needs compacted entries is caught up by SNAP; restore rules; reporting."""

from __future__ import annotations

from corral.consensus.raft.progress import ProgressState
from corral.consensus.raft.storage import MemoryStorage
from corral.consensus.raft.testing import Cluster
from corral.consensus.raft.types import (
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    Ready,
    Snapshot,
    SnapshotMeta,
)

from tests.consensus.raft.helpers import make_storage, new_raft, types_of

MT = MessageType


def lagging_cluster() -> Cluster:
    c = Cluster([1, 2, 3], seed=9, trace_limit=1000)
    c.elect(1)
    c.isolate(3)
    for i in range(10):
        c.propose(1, b"v%d" % i)
        c.stabilize()
    c.compact(1)
    c.compact(2)
    c.heal()
    return c


def test_lagging_follower_is_caught_up_by_a_snapshot() -> None:
    c = lagging_cluster()
    assert c.nodes[1].storage.first_index() > c.raft(3).log.last_index() + 1
    for _ in range(3):
        c.tick(1)
        c.stabilize()
    assert any(" SNAP " in line for line in c.trace)
    assert c.nodes[3].data() == c.nodes[1].data() == [b"v%d" % i for i in range(10)]
    assert c.raft(1).progress[3].state is ProgressState.REPLICATE
    c.propose(1, b"after")
    c.stabilize()
    assert c.nodes[3].data()[-1] == b"after"


def test_snapshot_arrives_in_ready_before_later_committed_entries() -> None:
    c = lagging_cluster()
    readies: list[Ready] = []
    c.ready_observers.append(lambda node_id, rd: readies.append(rd) if node_id == 3 else None)
    for _ in range(3):
        c.tick(1)
        c.stabilize()
    (rd,) = [rd for rd in readies if rd.snapshot is not None]
    assert rd.snapshot is not None
    index = rd.snapshot.meta.index
    assert rd.committed_entries == () and rd.must_sync
    assert rd.hard_state is not None and rd.hard_state.commit == index
    assert c.raft(3).log.applied >= index
    later = readies[readies.index(rd) + 1 :]
    assert all(e.index > index for r in later for e in r.committed_entries)


def test_failed_snapshot_is_retried_after_a_heartbeat() -> None:
    storage = make_storage(terms=(1, 1, 1, 1, 1), hard_state=HardState(term=1, commit=5))
    storage.create_snapshot(5, ConfState.of([1, 2, 3]), b"state")
    storage.compact(5)
    r = new_raft(1, storage=storage)
    r.become_candidate()
    r.become_leader()
    r.read_messages()
    pr = r.progress[2]
    pr.recent_active = True
    # The follower rejects our first probe with an empty log: we need entries before 6 -> SNAP.
    r.step(Message(MT.APP_RESP, to=1, frm=2, term=2, index=5, reject=True, reject_hint=0))
    (snap,) = r.read_messages()
    assert snap.type is MT.SNAP and snap.snapshot is not None and snap.snapshot.meta.index == 5
    assert pr.state is ProgressState.SNAPSHOT and pr.is_paused()
    r.step(Message(MT.BEAT, frm=1))
    assert MT.SNAP not in types_of(r.read_messages())  # nothing else while the snapshot is in flight
    r.step(Message(MT.SNAP_STATUS, frm=2, reject=True))
    assert r.progress[2].state is ProgressState.PROBE and pr.is_paused()
    r.step(Message(MT.HEARTBEAT_RESP, to=1, frm=2, term=2))
    assert MT.SNAP in types_of(r.read_messages())


def test_successful_snapshot_resumes_probing_after_it() -> None:
    storage = make_storage(terms=(1, 1, 1), hard_state=HardState(term=1, commit=3))
    storage.create_snapshot(3, ConfState.of([1, 2, 3]), b"")
    storage.compact(3)
    r = new_raft(1, storage=storage)
    r.become_candidate()
    r.become_leader()
    pr = r.progress[2]
    pr.become_snapshot(3)
    r.step(Message(MT.SNAP_STATUS, frm=2, reject=False))
    assert (pr.state, pr.next, pr.is_paused()) == (ProgressState.PROBE, 4, True)
    r.step(Message(MT.APP_RESP, to=1, frm=2, term=2, index=3))
    assert pr.state is ProgressState.REPLICATE and pr.match == 3


def test_inactive_follower_gets_no_snapshot() -> None:
    storage = make_storage(terms=(1, 1, 1), hard_state=HardState(term=1, commit=3))
    storage.create_snapshot(3, ConfState.of([1, 2, 3]), b"")
    storage.compact(3)
    r = new_raft(1, storage=storage)
    r.become_candidate()
    r.become_leader()
    pr = r.progress[3]
    pr.next = 1  # needs compacted entries
    pr.recent_active = False
    r.read_messages()
    r.step(Message(MT.PROP, frm=1, entries=(Entry(0, 0, b"x"),)))
    assert all(m.to != 3 or m.type is not MT.SNAP for m in r.read_messages())


def follower_with(terms: tuple[int, ...], commit: int):  # type: ignore[no-untyped-def]
    r = new_raft(2, storage=make_storage(terms=terms, hard_state=HardState(term=2, commit=commit)))
    r.become_follower(2, 1)
    return r


def snap_msg(index: int, term: int, voters: tuple[int, ...] = (1, 2, 3)) -> Message:
    snapshot = Snapshot(SnapshotMeta(index, term, ConfState.of(list(voters))), b"data")
    return Message(MT.SNAP, to=2, frm=1, term=2, snapshot=snapshot)


def test_follower_restores_a_newer_snapshot() -> None:
    r = follower_with((1, 1), commit=2)
    r.step(snap_msg(10, 2, voters=(1, 2, 3, 4)))
    (resp,) = r.read_messages()
    assert (resp.type, resp.index, resp.reject) == (MT.APP_RESP, 10, False)
    assert (r.log.committed, r.log.last_index(), r.log.first_index()) == (10, 10, 11)
    assert r.conf_state.voters == (1, 2, 3, 4) and 4 in r.progress


def test_follower_ignores_a_snapshot_it_has_already_committed_past() -> None:
    r = follower_with((1, 1, 1, 1), commit=3)
    r.step(snap_msg(2, 1))
    (resp,) = r.read_messages()
    assert resp.index == 3 and r.log.unstable.snapshot is None and r.log.last_index() == 4


def test_follower_holding_the_snapshots_last_entry_only_advances_its_commit() -> None:
    r = follower_with((1, 1, 1, 1), commit=1)
    r.step(snap_msg(3, 1))
    (resp,) = r.read_messages()
    assert resp.index == 3 and r.log.committed == 3 and r.log.unstable.snapshot is None


def test_follower_refuses_a_snapshot_of_a_membership_without_it() -> None:
    r = follower_with((1,), commit=1)
    r.step(snap_msg(9, 2, voters=(1, 3, 4)))
    assert r.log.committed == 1 and r.log.unstable.snapshot is None


def test_restart_from_a_snapshot_keeps_state() -> None:
    storage = MemoryStorage.with_members([1, 2, 3])
    storage.apply_snapshot(Snapshot(SnapshotMeta(7, 3, ConfState.of([1, 2, 3])), b"s"))
    storage.append([Entry(3, 8), Entry(4, 9)])
    storage.set_hard_state(HardState(term=4, vote=2, commit=8))
    r = new_raft(1, storage=storage)
    assert (r.term, r.vote, r.log.committed, r.log.applied, r.log.last_index()) == (4, 2, 8, 7, 9)
    assert [e.index for e in r.log.next_committed_entries()] == [8]
