"""Stable text renderings, and a golden Ready trace (rewrite with CORRAL_REWRITE=1, review the diff)."""

from __future__ import annotations

import os
from pathlib import Path

from corral.consensus.raft.describe import describe_entry, describe_message, describe_ready
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
    Ready,
    Snapshot,
    SnapshotMeta,
)

MT = MessageType
TESTDATA = Path(__file__).parent / "testdata"


def test_describe_message() -> None:
    m = Message(MT.APP, to=2, frm=1, term=1, log_term=1, index=11, commit=11, entries=(Entry(1, 12),))
    assert describe_message(m) == "1->2 APP term=1 log=1/11 commit=11 entries=[1/12]"
    rej = Message(MT.APP_RESP, to=1, frm=2, term=3, index=9, reject=True, reject_hint=5, log_term=2)
    assert describe_message(rej) == "2->1 APP_RESP term=3 index=9 rejected hint=2/5"
    snap = Message(MT.SNAP, to=3, frm=1, term=2, snapshot=Snapshot(SnapshotMeta(7, 2, ConfState.of([1, 2, 3]))))
    assert describe_message(snap) == "1->3 SNAP term=2 snapshot 2/7 voters=(1 2 3)"
    read = Message(MT.HEARTBEAT, to=2, frm=1, term=4, context=b"r-1")
    assert describe_message(read) == '1->2 HEARTBEAT term=4 context="r-1"'


def test_describe_entry() -> None:
    assert describe_entry(Entry(2, 5)) == "2/5"
    assert describe_entry(Entry(2, 5, b'say "hi"')) == '2/5 "say \\"hi\\""'
    cc = Entry(2, 6, ConfChange(ConfChangeType.ADD_LEARNER, 4).encode(), EntryType.CONF_CHANGE)
    assert describe_entry(cc) == "2/6 conf-change add_learner 4"
    assert describe_entry(Entry(1, 1, b"x" * 40)) == '1/1 "' + "x" * 32 + '"...'


def test_describe_ready() -> None:
    rd = Ready(hard_state=HardState(2, 1, 3), entries=(Entry(2, 4),), must_sync=True)
    assert describe_ready(rd) == ["HardState term=2 vote=1 commit=3", "Entries [2/4]", "MustSync"]
    assert describe_ready(Ready()) == []


def golden(name: str, lines: list[str]) -> None:
    path = TESTDATA / name
    text = "\n".join(lines) + "\n"
    if os.environ.get("CORRAL_REWRITE"):
        path.write_text(text)
    assert text == path.read_text(), f"trace changed; rerun with CORRAL_REWRITE=1 and review the diff of {path}"


def test_golden_trace_election_and_forwarded_proposal() -> None:
    c = Cluster([1, 2, 3], seed=1)
    lines: list[str] = []
    c.ready_observers.append(lambda n, rd: lines.extend(f"{n}: {line}" for line in describe_ready(rd)))
    lines.append("> campaign 1")
    c.elect(1)
    lines.append('> propose 2 "put k v"')
    c.propose(2, b"put k v")
    c.stabilize()
    golden("elect_and_propose.txt", lines)
