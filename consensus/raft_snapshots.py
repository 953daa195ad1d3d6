"""What a Raft member's snapshot holds besides the state machine's data: who votes, and the members.

The driver stores and sends a snapshot as one blob: a header chunk with the membership as of the
snapshot's index, then the state machine's chunks. The header is a chunk of its own (see `snapfile`), so
an incremental snapshot writes it anew while the state machine's unchanged chunks are reused.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import orjson

from .membership import Membership
from .raft import ConfState

if TYPE_CHECKING:
    from . import wal as wal_records
    from .log import SnapshotSource, StateMachine
    from .raft import RawNode
    from .raft.storage import MemoryStorage
    from .raft_driver import RaftSettings
    from .snapfile import SnapshotFiles
    from .stats import LogStats

logger = logging.getLogger("corral.consensus.raft_driver")

_HEADER = struct.Struct(">4sI")  # magic, length of the JSON that follows
_MAGIC = b"CRSM"


def header_chunk_name(index: int) -> str:
    return f"raft-membership-{index:016x}"


def encode_header(conf: ConfState, membership: Membership) -> bytes:
    body = orjson.dumps(
        {"voters": list(conf.voters), "learners": list(conf.learners), "membership": membership.encode().decode()}
    )
    return _HEADER.pack(_MAGIC, len(body)) + body


def split(data: bytes) -> tuple[ConfState, Membership, bytes]:
    """(who votes, the members, the state machine's data) of a stored or received snapshot."""
    if len(data) < _HEADER.size:
        raise ValueError("a snapshot too short for its membership header")
    magic, length = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError("a snapshot without its membership header")
    start = _HEADER.size
    doc = orjson.loads(data[start : start + length])
    conf = ConfState.of(doc["voters"], doc["learners"])
    return conf, Membership.decode(doc["membership"].encode()), data[start + length :]


class SnapshotMaking:
    """When and how a Raft member snapshots: every `snapshot_count` applied entries, the state machine's
    capture is written (header chunk + its chunks) on the snapshot thread while apply goes on; then the
    in-memory log is compacted (keeping `snapshot_catch_up_entries` for slow followers) and the WAL trimmed
    to the previous snapshot."""

    # The node's state these methods use (set by RaftNode).
    _settings: RaftSettings
    _state_machine: StateMachine
    _node: RawNode | None
    _membership: Membership
    _storage: MemoryStorage
    _snapshots: SnapshotFiles
    _snapshot_indexes: list[int]
    _snapshotting: asyncio.Task[None] | None
    _snapshot_thread: ThreadPoolExecutor
    _disk: ThreadPoolExecutor
    _wal: wal_records.WAL | None
    stats: LogStats

    def _maybe_snapshot(self) -> None:
        applied = self._state_machine.applied_index
        last = self._snapshot_indexes[-1] if self._snapshot_indexes else 0
        if applied - last >= self._settings.snapshot_count and self._snapshotting is None:
            self._snapshotting = asyncio.get_running_loop().create_task(self._snapshot(), name="corral-snapshot")

    async def _snapshot(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            assert self._node is not None
            source: SnapshotSource = self._state_machine.snapshot()
            conf = self._node.status().conf_state
            members = self._membership.copy()
            term = self._storage.term(source.index)
            try:
                await loop.run_in_executor(self._snapshot_thread, self._save_snapshot, source, term, conf, members)
            finally:
                source.release()
            self._storage.create_snapshot(source.index, conf, b"")
            keep_from = source.index - self._settings.snapshot_catch_up_entries
            if keep_from > self._storage.first_index():
                self._storage.compact(keep_from)
            previous = self._snapshot_indexes[-1] if self._snapshot_indexes else 0
            self._snapshot_indexes = [previous, source.index] if previous else [source.index]
            if previous:
                assert self._wal is not None
                await loop.run_in_executor(self._disk, self._wal.trim_to, min(previous, keep_from), term)
        except Exception:  # noqa: BLE001 - a failed snapshot leaves the WAL whole; try again later
            logger.exception("snapshot failed")
        finally:
            self._snapshotting = None

    def _save_snapshot(self, source: SnapshotSource, term: int, conf: ConfState, members: Membership) -> None:
        started = time.perf_counter()
        header = encode_header(conf, members)
        chunks = [(header_chunk_name(source.index), lambda: header), *source.chunks()]
        self._snapshots.save_chunks(source.index, term, chunks)
        self.stats.snapshot_save.observe(time.perf_counter() - started)
