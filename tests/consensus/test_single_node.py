"""SingleNodeLog: group commit, replay on start, snapshots with WAL trimming, storage failure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from corral.consensus.log import LogFailed
from corral.consensus.single_node import SingleNodeLog
from corral.consensus.wal import WAL


class Recorder:
    """A state machine that records what it applied; its snapshot is that record."""

    def __init__(self) -> None:
        self.applied_index = 0
        self.applied: list[bytes] = []

    def apply(self, index: int, data: bytes, decoded: object | None = None) -> object:
        if index <= self.applied_index:
            return None
        self.applied_index = index
        self.applied.append(data)
        return (index, data)

    def snapshot(self) -> Snap:
        return Snap(self.applied_index, b"\n".join(self.applied))

    def restore(self, data: bytes) -> None:
        self.applied = data.split(b"\n") if data else []
        self.applied_index = len(self.applied)


class Snap:
    def __init__(self, index: int, data: bytes) -> None:
        self.index, self._data, self.released = index, data, False

    def chunks(self) -> list[tuple[str, Callable[[], bytes]]]:
        return [(f"recorder-{self.index}", lambda: self._data)]

    def release(self) -> None:
        self.released = True


async def run(
    data_dir: Path, proposals: list[bytes], snapshot_count: int = 1000
) -> tuple[list[object], Recorder, SingleNodeLog]:
    machine = Recorder()
    log = SingleNodeLog(data_dir, machine, member_id=7, snapshot_count=snapshot_count)
    await log.start()
    results = await asyncio.gather(*(log.propose(p) for p in proposals))
    await log.close()
    return list(results), machine, log


def test_proposals_made_together_share_one_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs = 0
    original = WAL.sync

    def counting_sync(self: WAL) -> None:
        nonlocal syncs
        syncs += 1
        original(self)

    monkeypatch.setattr(WAL, "sync", counting_sync)
    results, machine, _ = asyncio.run(run(tmp_path, [b"%d" % i for i in range(500)]))
    assert results == [(i + 1, b"%d" % i) for i in range(500)]
    assert syncs <= 4  # start-up state, then the batch (at most a couple of batches), then close


def test_restart_replays_the_log_and_starts_a_new_term(tmp_path: Path) -> None:
    asyncio.run(run(tmp_path, [b"a", b"b", b"c"]))
    results, machine, log = asyncio.run(run(tmp_path, [b"d"]))
    assert machine.applied == [b"a", b"b", b"c", b"d"] and results == [(4, b"d")]
    assert log.term == 2


def test_snapshots_trim_the_wal_and_restore(tmp_path: Path) -> None:
    async def many_batches() -> None:
        machine = Recorder()
        log = SingleNodeLog(tmp_path, machine, member_id=7, snapshot_count=50)
        await log.start()
        for round_ in range(10):
            await asyncio.gather(*(log.propose(b"%d-%d" % (round_, i)) for i in range(30)))
            for _ in range(500):  # let a snapshot that became due finish (it runs beside the writes)
                if not log.snapshot_in_progress:
                    break
                await asyncio.sleep(0.01)
        await log.close()

    asyncio.run(many_batches())
    assert len(list((tmp_path / "member" / "snap").glob("*.snap"))) >= 2
    _, contents = WAL.open(tmp_path / "member" / "wal")
    assert contents.snapshot is not None and contents.entries[0].index > 1  # the WAL was trimmed
    _, machine, _ = asyncio.run(run(tmp_path, []))
    assert len(machine.applied) == 300 and machine.applied[-1] == b"9-29"


def test_a_storage_failure_acknowledges_nothing_and_stops_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        machine = Recorder()
        log = SingleNodeLog(tmp_path, machine, member_id=7)
        await log.start()
        await log.propose(b"ok")

        def broken_sync(self: WAL) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(WAL, "sync", broken_sync)
        with pytest.raises(LogFailed):
            await log.propose(b"lost")
        with pytest.raises(LogFailed):
            await log.propose(b"after")
        assert machine.applied == [b"ok"]
        monkeypatch.undo()
        await log.close()

    asyncio.run(scenario())
