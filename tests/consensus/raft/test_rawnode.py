"""RawNode and the Ready/advance contract; RaftConfig validation."""

from __future__ import annotations

import random

import pytest
from corral.consensus.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RaftConfig,
    RawNode,
    ReadOnlyOption,
    Ready,
    Role,
    SoftState,
)
from corral.consensus.raft.progress import ProgressState

MT = MessageType


def node(node_id: int = 1, storage: MemoryStorage | None = None, **kw: object) -> tuple[RawNode, MemoryStorage]:
    storage = storage or MemoryStorage.with_members([1])
    return RawNode(RaftConfig(id=node_id, rng=random.Random(node_id), **kw), storage), storage  # type: ignore[arg-type]


def handle(rn: RawNode, storage: MemoryStorage) -> Ready:
    """Process one Ready the way an application must (there is nobody to send messages to)."""
    rd = rn.ready()
    if rd.snapshot is not None:
        storage.apply_snapshot(rd.snapshot)
    storage.append(rd.entries)
    if rd.hard_state is not None:
        storage.set_hard_state(rd.hard_state)
    rn.advance(rd)
    return rd


def test_a_fresh_node_has_nothing_to_do() -> None:
    rn, _ = node()
    assert not rn.has_ready()
    assert rn.ready().is_empty()


def test_campaign_on_a_single_voter_yields_leadership_and_the_committed_noop() -> None:
    rn, storage = node()
    rn.campaign()
    assert rn.has_ready()
    rd = handle(rn, storage)
    assert rd.soft_state == SoftState(lead=1, role=Role.LEADER)
    assert rd.hard_state == HardState(term=1, vote=1, commit=1)
    assert rd.entries == (Entry(1, 1),) and rd.committed_entries == (Entry(1, 1),)
    assert rd.must_sync and rd.messages == ()
    assert not rn.has_ready()
    assert rn.status().applied == 1


def test_proposals_appear_as_entries_then_committed_entries() -> None:
    rn, storage = node()
    rn.campaign()
    handle(rn, storage)
    rn.propose(b"a")
    rn.propose(b"b")
    rd = handle(rn, storage)
    assert [e.data for e in rd.entries] == [b"a", b"b"]
    assert [e.data for e in rd.committed_entries] == [b"a", b"b"]
    assert rd.soft_state is None and rd.hard_state == HardState(term=1, vote=1, commit=3)
    assert storage.last_index() == 3 and rn.status().applied == 3


def test_ready_must_be_advanced_before_the_next_one() -> None:
    rn, _ = node()
    rn.campaign()
    rd = rn.ready()
    assert not rn.has_ready()
    with pytest.raises(RuntimeError):
        rn.ready()
    with pytest.raises(RuntimeError):
        rn.advance(Ready())
    rn.advance(rd)


def test_committed_entries_are_split_by_the_per_ready_size_limit() -> None:
    rn, storage = node(max_committed_size_per_ready=10)
    rn.campaign()
    handle(rn, storage)
    for i in range(4):
        rn.propose(b"%08d" % i)
    sizes = []
    while rn.has_ready():
        sizes.append(len(handle(rn, storage).committed_entries))
    assert sizes == [1, 1, 1, 1]


def test_commit_only_change_does_not_need_sync() -> None:
    storage = MemoryStorage.with_members([1, 2])
    storage.append([Entry(1, 1)])
    storage.set_hard_state(HardState(term=1, vote=2))
    rn, _ = node(1, storage)
    rn.step(Message(MT.HEARTBEAT, to=1, frm=2, term=1, commit=1))
    rd = rn.ready()
    assert rd.hard_state == HardState(term=1, vote=2, commit=1)
    assert not rd.must_sync
    assert [m.type for m in rd.messages] == [MT.HEARTBEAT_RESP]
    rn.advance(rd)


def test_restart_resumes_from_storage_without_a_spurious_ready() -> None:
    rn, storage = node()
    rn.campaign()
    handle(rn, storage)
    rn.propose(b"kept")
    handle(rn, storage)
    again, _ = node(1, storage, applied=2)
    assert not again.has_ready()
    status = again.status()
    assert (status.hard_state, status.applied, status.last_index) == (HardState(1, 1, 2), 2, 2)
    assert status.soft_state == SoftState(0, Role.FOLLOWER)


def test_step_refuses_local_messages_and_ignores_strangers_responses() -> None:
    rn, _ = node()
    with pytest.raises(ValueError):
        rn.step(Message(MT.HUP, to=1, frm=1))
    rn.step(Message(MT.APP_RESP, to=1, frm=9, term=5))
    assert rn.status().hard_state.term == 0


def test_propose_without_a_leader_raises() -> None:
    rn, _ = node(1, MemoryStorage.with_members([1, 2, 3]))
    with pytest.raises(ProposalDropped):
        rn.propose(b"x")


def test_status_reports_progress_on_the_leader() -> None:
    rn, storage = node(1, MemoryStorage.with_members([1, 2]))
    rn.campaign()
    rn.step(Message(MT.PRE_VOTE_RESP, to=1, frm=2, term=1))
    rn.step(Message(MT.VOTE_RESP, to=1, frm=2, term=1))
    status = rn.status()
    assert status.soft_state.role is Role.LEADER
    assert status.progress[1].state is ProgressState.REPLICATE and status.progress[1].match == 1
    assert status.progress[2].state is ProgressState.PROBE
    assert status.conf_state == ConfState.of([1, 2])


def test_apply_conf_change_returns_the_new_membership() -> None:
    rn, storage = node()
    rn.campaign()
    handle(rn, storage)
    rn.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 2))
    rd = handle(rn, storage)
    (entry,) = rd.committed_entries
    assert entry.type is EntryType.CONF_CHANGE
    assert rn.apply_conf_change(ConfChange.decode(entry.data)) == ConfState.of([1], [2])


@pytest.mark.parametrize(
    "bad",
    [
        {"id": 0},
        {"heartbeat_tick": 0},
        {"election_tick": 1, "heartbeat_tick": 1},
        {"max_inflight_msgs": 0},
        {"max_size_per_msg": -1},
        {"applied": -1},
        {"read_only_option": ReadOnlyOption.LEASE_BASED, "check_quorum": False},
    ],
)
def test_config_validation(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"id": 1, "rng": random.Random(0), **bad}
    with pytest.raises(ValueError):
        RaftConfig(**fields).validate()  # type: ignore[arg-type]
