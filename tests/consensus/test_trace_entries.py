"""Trace contexts in log entries: untraced entries are byte for byte what they were before tracing, traced
ones carry the context (flagged, length-prefixed) and every member strips it before apply."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from corral.consensus import trace_hooks
from corral.consensus.membership import Member
from corral.consensus.raft_driver import RaftNode, RaftSettings
from corral.consensus.single_node import SingleNodeLog
from corral.consensus.trace_hooks import TracedEntry
from corral.consensus.wal import WAL

from tests.consensus.test_single_node import Recorder

MEMBER = 0x1234
REQUEST_ID = MEMBER.to_bytes(8, "big") + (5).to_bytes(8, "big")
CONTEXT = b"\x00" + bytes(range(1, 26)) + b"vendor=x"


class ProtocolHooks:
    """`TraceHooks` that hand out `context` as the proposer's trace context and record what the log reports."""

    def __init__(self, context: bytes | None) -> None:
        self.context = context
        self.persisted_calls: list[tuple[list[TracedEntry], int, int, int, bool]] = []
        self.applied_calls: list[tuple[TracedEntry, int, int, object]] = []

    def current_context(self) -> bytes | None:
        return self.context

    def persisted(self, entries: Sequence[TracedEntry], start_ns: int, end_ns: int, batch: int, synced: bool) -> None:
        self.persisted_calls.append((list(entries), start_ns, end_ns, batch, synced))

    def applied(self, entry: TracedEntry, start_ns: int, end_ns: int, result: object) -> None:
        self.applied_calls.append((entry, start_ns, end_ns, result))


# -- the encoding -----------------------------------------------------------------------------------


def test_an_entry_without_a_context_is_the_request_id_and_the_data() -> None:
    assert trace_hooks.attach(REQUEST_ID, None, b"\x01command") == REQUEST_ID + b"\x01command"
    assert trace_hooks.split(REQUEST_ID + b"\x01command") == (REQUEST_ID, None, b"\x01command")
    assert not trace_hooks.is_traced(REQUEST_ID + b"\x01command")
    assert trace_hooks.request_id(REQUEST_ID + b"data") == REQUEST_ID


def test_a_traced_entry_is_flagged_and_splits_back() -> None:
    data = trace_hooks.attach(REQUEST_ID, CONTEXT, b"\x01command")
    assert data[:8] == REQUEST_ID[:8] and data[9:16] == REQUEST_ID[9:16]
    assert data[8] == REQUEST_ID[8] | 0x80
    assert data[16:18] == len(CONTEXT).to_bytes(2, "big")
    assert trace_hooks.is_traced(data)
    assert trace_hooks.request_id(data) == REQUEST_ID
    assert trace_hooks.split(data) == (REQUEST_ID, CONTEXT, b"\x01command")
    assert trace_hooks.split(trace_hooks.attach(REQUEST_ID, CONTEXT, b"")) == (REQUEST_ID, CONTEXT, b"")


def test_an_oversized_context_is_not_carried() -> None:
    big = b"x" * (trace_hooks.MAX_CONTEXT_BYTES + 1)
    assert trace_hooks.attach(REQUEST_ID, big, b"d") == REQUEST_ID + b"d"


# -- the Raft log, in process (one voter) ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _raft_run(data_dir: Path, hooks: ProtocolHooks | None, proposals: list[bytes]) -> Recorder:
    peer = f"http://127.0.0.1:{_free_port()}"
    settings = RaftSettings(
        member_id=MEMBER, initial_members=(Member(MEMBER, "n1", (peer,)),), listen_peer_url=peer,
        snapshot_count=100_000, tick_seconds=0.01, election_ticks=5,
    )  # fmt: skip
    machine = Recorder()
    node = RaftNode(data_dir, machine, settings, trace_hooks=hooks)
    await node.start()
    try:
        deadline = time.monotonic() + 10
        while node.status().leader_id != MEMBER:
            assert time.monotonic() < deadline, "the lone member did not elect itself"
            await asyncio.sleep(0.01)
        for proposal in proposals:
            await node.propose(proposal)
        await node.read_barrier()  # everything committed is applied
    finally:
        await node.close()
    return machine


def _normal_entries(data_dir: Path) -> list[bytes]:
    """The data of the WAL's normal entries (Raft entry type byte 0) with a request id."""
    wal, contents = WAL.open(data_dir / "member" / "wal")
    wal.close()
    return [e.data[1:] for e in contents.entries if e.data[:1] == b"\x00" and len(e.data) > 1]


def _id(counter: int) -> bytes:
    return MEMBER.to_bytes(8, "big") + counter.to_bytes(8, "big")


def test_raft_entries_are_unchanged_with_tracing_off(tmp_path: Path) -> None:
    machine = asyncio.run(_raft_run(tmp_path, None, [b"\x01one", b"\x01two"]))
    stored = _normal_entries(tmp_path)
    assert [data[16:] for data in stored] == [b"\x01one", b"\x01two"]
    for data in stored:  # exactly a request id (this member, a counter) and the proposal
        assert data[:8] == MEMBER.to_bytes(8, "big") and data[8] == 0 and not trace_hooks.is_traced(data)
    assert machine.applied[-2:] == [b"\x01one", b"\x01two"]


def test_raft_entries_are_unchanged_when_the_proposer_is_not_traced(tmp_path: Path) -> None:
    hooks = ProtocolHooks(None)  # tracing on, but no sampled span around the proposal
    asyncio.run(_raft_run(tmp_path, hooks, [b"\x01one"]))
    (stored,) = _normal_entries(tmp_path)
    assert stored[16:] == b"\x01one" and not trace_hooks.is_traced(stored)
    assert hooks.persisted_calls == [] and hooks.applied_calls == []


def test_raft_entries_carry_the_context_and_apply_without_it(tmp_path: Path) -> None:
    hooks = ProtocolHooks(CONTEXT)
    machine = asyncio.run(_raft_run(tmp_path, hooks, [b"\x01one"]))
    (stored,) = _normal_entries(tmp_path)
    request_id, context, data = trace_hooks.split(stored)
    assert context == CONTEXT and data == b"\x01one" and request_id[:8] == MEMBER.to_bytes(8, "big")
    assert machine.applied[-1] == b"\x01one"  # the state machine never sees the context
    ((entries, start, end, batch, synced),) = hooks.persisted_calls
    assert [e.context for e in entries] == [CONTEXT]
    assert 0 < start <= end and synced is True and batch == 1
    ((entry, a_start, a_end, result),) = hooks.applied_calls
    assert entry.index == entries[0].index and entry.context == CONTEXT and 0 < a_start <= a_end
    assert result == (entry.index, b"\x01one")


def test_a_member_without_tracing_applies_traced_entries_without_their_context(tmp_path: Path) -> None:
    asyncio.run(_raft_run(tmp_path, ProtocolHooks(CONTEXT), [b"\x01one"]))
    replayed = asyncio.run(_raft_run(tmp_path, None, []))  # restarted with tracing off: replays the WAL
    assert b"\x01one" in replayed.applied
    assert not any(CONTEXT in data for data in replayed.applied)


# -- the single-node log ----------------------------------------------------------------------------


def _single_run(data_dir: Path, hooks: ProtocolHooks | None) -> Recorder:
    async def scenario() -> Recorder:
        machine = Recorder()
        log = SingleNodeLog(data_dir, machine, member_id=7, trace_hooks=hooks)
        await log.start()
        await asyncio.gather(log.propose(b"\x01a"), log.propose(b"\x01b"))
        await log.close()
        return machine

    return asyncio.run(scenario())


def test_single_node_wal_is_the_same_with_and_without_tracing(tmp_path: Path) -> None:
    _single_run(tmp_path / "off", None)
    hooks = ProtocolHooks(CONTEXT)
    machine = _single_run(tmp_path / "on", hooks)
    entries = []
    for name in ("off", "on"):
        wal, contents = WAL.open(tmp_path / name / "member" / "wal")
        wal.close()
        entries.append([(e.index, e.data) for e in contents.entries])
    assert entries[0] == entries[1] == [(1, b"\x01a"), (2, b"\x01b")]
    assert machine.applied == [b"\x01a", b"\x01b"]
    assert [e.index for call in hooks.persisted_calls for e in call[0]] == [1, 2]
    assert [call[0].index for call in hooks.applied_calls] == [1, 2]
    assert [call[3] for call in hooks.applied_calls] == [(1, b"\x01a"), (2, b"\x01b")]
