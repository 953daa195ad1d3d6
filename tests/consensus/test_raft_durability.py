"""A Raft member applies (and so acknowledges) an entry only once the entry is in its own WAL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from corral.consensus.membership import Member
from corral.consensus.raft_driver import RaftNode, RaftSettings

from tests.consensus.test_single_node import Recorder
from tests.consensus.test_trace_entries import _free_port

MEMBER = 0x77


class CheckingRecorder(Recorder):
    """Records, for every entry it applies, whether the WAL already held it."""

    def __init__(self) -> None:
        super().__init__()
        self.node: RaftNode | None = None
        self.applied_before_written: list[int] = []

    def apply(self, index: int, data: bytes, decoded: object | None = None) -> object:
        wal = self.node._wal if self.node is not None else None  # noqa: SLF001 - the test inspects the disk
        if wal is not None and (wal.last_index or 0) < index:
            self.applied_before_written.append(index)
        return super().apply(index, data, decoded)


def test_a_lone_voter_writes_an_entry_before_applying_it(tmp_path: Path) -> None:
    """A single voter commits what it appends in the same Ready: it must still write before applying."""

    async def scenario() -> CheckingRecorder:
        peer = f"http://127.0.0.1:{_free_port()}"
        settings = RaftSettings(
            member_id=MEMBER, initial_members=(Member(MEMBER, "n1", (peer,)),), listen_peer_url=peer,
            snapshot_count=100_000, tick_seconds=0.01, election_ticks=5,
        )  # fmt: skip
        machine = CheckingRecorder()
        node = RaftNode(tmp_path, machine, settings)
        machine.node = node
        await node.start()
        try:
            deadline = time.monotonic() + 10
            while node.status().leader_id != MEMBER:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            await asyncio.gather(*(node.propose(f"write {i}".encode()) for i in range(50)))
        finally:
            await node.close()
        return machine

    machine = asyncio.run(scenario())
    assert len(machine.applied) >= 50
    assert machine.applied_before_written == []
