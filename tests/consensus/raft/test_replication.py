"""Replication flow control: batching, pipelining with a bounded window, probing, heartbeats."""

from __future__ import annotations

from corral.consensus.raft.progress import ProgressState
from corral.consensus.raft.raft import Raft
from corral.consensus.raft.types import Entry, Message, MessageType

from tests.consensus.raft.helpers import new_raft

MT = MessageType


def leader(**kw: object) -> Raft:
    r = new_raft(1, **kw)  # type: ignore[arg-type]
    r.become_candidate()
    r.become_leader()
    for node in (2, 3):  # both followers acknowledge the no-op: REPLICATE
        r.step(Message(MT.APP_RESP, to=1, frm=node, term=1, index=1))
    r.read_messages()
    return r


def propose(r: Raft, *payloads: bytes) -> None:
    r.step(Message(MT.PROP, frm=1, entries=tuple(Entry(0, 0, p) for p in payloads)))


def apps_to(r: Raft, node: int) -> list[Message]:
    return [m for m in r.read_messages() if m.to == node and m.type is MT.APP]


def test_appends_are_batched_up_to_max_size_per_msg() -> None:
    r = leader(max_size_per_msg=10, max_inflight_msgs=100)
    propose(r, *[b"abcd"] * 6)
    msgs = apps_to(r, 2)
    assert [len(m.entries) for m in msgs] == [2, 2, 2]  # one message per proposal batch, then pipelined
    assert [m.index for m in msgs] == [1, 3, 5]


def test_replicate_state_pipelines_until_the_inflight_window_is_full() -> None:
    r = leader(max_inflight_msgs=2)
    pr = r.progress[2]
    assert pr.state is ProgressState.REPLICATE
    for i in range(4):
        propose(r, b"%d" % i)
    assert [m.entries[0].index for m in apps_to(r, 2)] == [2, 3]  # the window holds two
    assert pr.is_paused()
    r.step(Message(MT.APP_RESP, to=1, frm=2, term=1, index=2))
    # Freed one slot: the rest goes out (as one batch).
    assert [[e.index for e in m.entries] for m in apps_to(r, 2)] == [[4, 5]]


def test_probe_state_sends_one_append_until_a_reply() -> None:
    r = new_raft(1)
    r.become_candidate()
    r.become_leader()  # followers start in PROBE
    pr = r.progress[2]
    assert pr.state is ProgressState.PROBE
    propose(r, b"x")
    assert len(apps_to(r, 2)) == 1
    propose(r, b"y")
    assert apps_to(r, 2) == []  # paused until the probe is answered
    r.step(Message(MT.HEARTBEAT_RESP, to=1, frm=2, term=1))
    assert len(apps_to(r, 2)) == 1  # a heartbeat reply lets one more probe out
    r.step(Message(MT.APP_RESP, to=1, frm=2, term=1, index=3))
    assert r.progress[2].state is ProgressState.REPLICATE and pr.match == 3


def test_rejection_rewinds_replicate_to_probe() -> None:
    r = leader()
    propose(r, b"a")
    propose(r, b"b")
    r.read_messages()
    # The follower lost its log (say): it rejects the append after index 2.
    r.step(Message(MT.APP_RESP, to=1, frm=2, term=1, index=2, reject=True, reject_hint=1, log_term=1))
    pr = r.progress[2]
    assert pr.state is ProgressState.PROBE and pr.next == 2
    (probe,) = apps_to(r, 2)
    assert (probe.index, [e.index for e in probe.entries]) == (1, [2, 3])


def test_unreachable_follower_falls_back_to_probing() -> None:
    r = leader()
    r.step(Message(MT.UNREACHABLE, frm=2))
    assert r.progress[2].state is ProgressState.PROBE


def test_heartbeat_reply_unblocks_a_full_window() -> None:
    r = leader(max_inflight_msgs=1)
    propose(r, b"a")
    propose(r, b"b")
    assert len(apps_to(r, 2)) == 1 and r.progress[2].is_paused()
    r.step(Message(MT.HEARTBEAT_RESP, to=1, frm=2, term=1))
    assert len(apps_to(r, 2)) == 1  # one slot freed, so the next append goes out


def test_heartbeats_never_carry_a_commit_beyond_the_followers_match() -> None:
    r = leader()
    propose(r, b"a")
    r.step(Message(MT.APP_RESP, to=1, frm=3, term=1, index=2))  # commit 2 via 1 and 3
    assert r.log.committed == 2
    r.read_messages()
    r.step(Message(MT.BEAT, frm=1))
    commits = {m.to: m.commit for m in r.read_messages() if m.type is MT.HEARTBEAT}
    assert commits == {2: 1, 3: 2}


def test_commit_advances_are_broadcast() -> None:
    r = leader()
    propose(r, b"a")
    r.read_messages()
    r.step(Message(MT.APP_RESP, to=1, frm=2, term=1, index=2))
    assert {m.to: m.commit for m in r.read_messages() if m.type is MT.APP} == {2: 2, 3: 2}


def test_stale_rejection_is_ignored_in_replicate_state() -> None:
    r = leader()
    propose(r, b"a")
    r.step(Message(MT.APP_RESP, to=1, frm=2, term=1, index=2))
    r.read_messages()
    r.step(Message(MT.APP_RESP, to=1, frm=2, term=1, index=1, reject=True, reject_hint=1))
    assert r.progress[2].state is ProgressState.REPLICATE and r.read_messages() == []
