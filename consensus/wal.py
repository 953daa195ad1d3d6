"""Segmented write-ahead log of CRC-framed records: Raft entries, hard state and snapshot marks.

A record is an 8-byte header ``<II`` (body length, crc32 of body) followed by the body: one kind byte and
its payload. Segments are files ``{seq:016x}-{first_index:016x}.wal``; only the last one may have a torn
tail, because a segment is fsynced before the next one is created. Every new segment starts with the
current hard state and snapshot mark, so deleting old segments never loses them.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")  # body length, crc32(body)
_ENTRY = struct.Struct("<BQQ")  # kind, index, term; entry data follows
_STATE = struct.Struct("<BQQQ")  # kind, term, vote, commit
_MARK = struct.Struct("<BQQ")  # kind, index, term
_SEGMENT_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC


class WalCorruptError(Exception):
    """The log is damaged somewhere other than a torn tail; refusing to start is the only safe answer."""


class RecordKind(enum.IntEnum):
    ENTRY = 1
    STATE = 2
    SNAPSHOT = 3


@dataclass(slots=True, frozen=True)
class Entry:
    index: int
    term: int
    data: bytes


@dataclass(slots=True, frozen=True)
class HardState:
    term: int = 0
    vote: int = 0
    commit: int = 0


@dataclass(slots=True, frozen=True)
class SnapshotMark:
    """A snapshot at ``index`` exists; entries up to it may be gone from the log."""

    index: int
    term: int


@dataclass(slots=True, frozen=True)
class WalContents:
    """What a reopened log holds: entries after the newest snapshot mark, the newest state and mark."""

    entries: list[Entry]
    state: HardState
    snapshot: SnapshotMark | None
    truncated_bytes: int


@dataclass(slots=True)
class _Segment:
    seq: int
    first_index: int
    path: Path
    size: int


def fsync_dir(directory: Path) -> None:
    """Make creations, renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}.wal"


def _frame(body: bytes) -> bytes:
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def _encode_state(state: HardState) -> bytes:
    return _frame(_STATE.pack(RecordKind.STATE, state.term, state.vote, state.commit))


def _encode_mark(mark: SnapshotMark) -> bytes:
    return _frame(_MARK.pack(RecordKind.SNAPSHOT, mark.index, mark.term))


class _Reader:
    """Replays records in order with Raft semantics: later entries overwrite a conflicting suffix."""

    __slots__ = ("entries", "state", "snapshot", "last_index")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.state = HardState()
        self.snapshot: SnapshotMark | None = None
        # Index of the last entry logically in the log, counting entries a snapshot mark dropped.
        self.last_index: int | None = None

    def entry(self, entry: Entry, where: str) -> None:
        index = entry.index
        if self.snapshot is not None and index <= self.snapshot.index:
            return  # committed and covered by the snapshot (e.g. a segment that predates the mark)
        last = self.last_index
        if last is not None and index > last + 1:
            raise WalCorruptError(f"{where}: entry {index} follows {last}: gap in the log")
        if last is not None and index <= last:
            entries = self.entries
            pos = index - entries[0].index if entries else 0
            del entries[max(pos, 0) :]
        self.entries.append(entry)
        self.last_index = index

    def mark(self, mark: SnapshotMark) -> None:
        self.snapshot = mark
        entries = self.entries
        if entries and entries[0].index <= mark.index:
            del entries[: min(mark.index - entries[0].index + 1, len(entries))]
        self.last_index = mark.index if self.last_index is None else max(self.last_index, mark.index)

    def segment(self, seg: _Segment, is_last: bool) -> int:
        """Replay one segment; return the torn bytes cut from the last one, raise for any other damage."""
        data = seg.path.read_bytes()
        view = memoryview(data)
        size = len(data)
        off = 0
        while off < size:
            problem = None
            if size - off < _HEADER.size:
                problem = "short header"
            else:
                length, crc = _HEADER.unpack_from(data, off)
                end = off + _HEADER.size + length
                if length == 0:
                    problem = "empty record"
                elif end > size:
                    problem = "record runs past end of file"
                elif zlib.crc32(view[off + _HEADER.size : end]) != crc:
                    problem = "crc mismatch"
            if problem is not None:
                where = f"{seg.path.name} at offset {off}"
                if not is_last:
                    raise WalCorruptError(f"{where}: {problem} in a segment that is not the last")
                return _truncate(seg, off, f"{where}: {problem}")
            self._record(data, off + _HEADER.size, end, seg.path.name)
            off = end
        return 0

    def _record(self, data: bytes, start: int, end: int, name: str) -> None:
        kind = data[start]
        length = end - start
        if kind == RecordKind.ENTRY and length >= _ENTRY.size:
            _, index, term = _ENTRY.unpack_from(data, start)
            self.entry(Entry(index, term, data[start + _ENTRY.size : end]), name)
        elif kind == RecordKind.STATE and length == _STATE.size:
            _, term, vote, commit = _STATE.unpack_from(data, start)
            self.state = HardState(term, vote, commit)
        elif kind == RecordKind.SNAPSHOT and length == _MARK.size:
            _, index, term = _MARK.unpack_from(data, start)
            self.mark(SnapshotMark(index, term))
        else:
            # The CRC matched, so this is not a torn write but a record we do not understand.
            raise WalCorruptError(f"{name} at offset {start - _HEADER.size}: bad record kind {kind}/{length}")


def _truncate(seg: _Segment, offset: int, reason: str) -> int:
    dropped = seg.size - offset
    logger.warning("WAL torn tail: %s; truncating %d bytes", reason, dropped)
    fd = os.open(seg.path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    seg.size = offset
    return dropped


def _list_segments(directory: Path) -> list[_Segment]:
    segments = []
    for path in directory.iterdir():
        match = _SEGMENT_NAME.match(path.name)
        if match is not None:
            seq, first = int(match[1], 16), int(match[2], 16)
            segments.append(_Segment(seq, first, path, path.stat().st_size))
    segments.sort(key=lambda s: s.seq)
    for prev, seg in zip(segments, segments[1:], strict=False):
        if seg.seq != prev.seq + 1:
            raise WalCorruptError(f"segment {seg.path.name} follows {prev.path.name}: missing segment")
    return segments


class WAL:
    """An append-only log on disk; one thread at a time, no asyncio. Create it with ``WAL.open``."""

    def __init__(
        self,
        directory: Path,
        segment_bytes: int,
        segments: list[_Segment],
        state: HardState,
        snapshot: SnapshotMark | None,
        last_index: int | None,
    ) -> None:
        self._dir = directory
        self._segment_bytes = segment_bytes
        self._segments = segments
        self._state = state
        self._snapshot = snapshot
        self._last_index = last_index
        self._fd: int | None = None
        self.on_sync: Callable[[float], None] | None = None  # told how long each fdatasync took
        if segments:
            self._fd = os.open(segments[-1].path, _OPEN_FLAGS)
        else:
            self._create_segment(0)

    @classmethod
    def open(cls, directory: Path, segment_bytes: int = 64 << 20) -> tuple[WAL, WalContents]:
        """Open (or create) the log in ``directory``, repairing a torn tail, and return what it holds."""
        directory.mkdir(parents=True, exist_ok=True)
        segments = _list_segments(directory)
        reader = _Reader()
        if segments and segments[0].seq > 0:
            # Older segments were released; the log before this one ended just below its first index.
            reader.last_index = segments[0].first_index - 1
        truncated = 0
        for i, seg in enumerate(segments):
            truncated += reader.segment(seg, is_last=i == len(segments) - 1)
        wal = cls(directory, segment_bytes, segments, reader.state, reader.snapshot, reader.last_index)
        contents = WalContents(reader.entries, reader.state, reader.snapshot, truncated)
        return wal, contents

    @property
    def size_bytes(self) -> int:
        """Total bytes in all segment files."""
        return sum(seg.size for seg in self._segments)

    @property
    def last_index(self) -> int | None:
        """Index of the last appended entry (or snapshot mark), ``None`` for an empty log."""
        return self._last_index

    def append_entries(self, entries: Sequence[Entry]) -> None:
        """Append entries; one starting at or below the last index overwrites the suffix from there."""
        if not entries:
            return
        expected = entries[0].index
        last = self._last_index
        if last is not None and expected > last + 1:
            raise ValueError(f"entry {expected} would leave a gap after {last}")
        snap = self._snapshot
        if snap is not None and expected <= snap.index:
            raise ValueError(f"entry {expected} is covered by the snapshot at {snap.index}")
        buf = bytearray()
        header, entry_head, crc32 = _HEADER.pack, _ENTRY.pack, zlib.crc32
        for entry in entries:
            if entry.index != expected:
                raise ValueError(f"entries not contiguous: {entry.index} where {expected} expected")
            expected += 1
            head = entry_head(RecordKind.ENTRY, entry.index, entry.term)
            data = entry.data
            buf += header(_ENTRY.size + len(data), crc32(data, crc32(head)))
            buf += head
            buf += data
        self._write(buf)
        self._last_index = expected - 1
        self._cut_if_full()

    def save_state(self, state: HardState) -> None:
        """Record Raft's hard state; the newest one wins on reopen."""
        self._write(_encode_state(state))
        self._state = state
        self._cut_if_full()

    def mark_snapshot(self, index: int, term: int) -> None:
        """Record that a snapshot at ``index`` is durable, so entries up to it need not be replayed."""
        mark = SnapshotMark(index, term)
        self._write(_encode_mark(mark))
        self._snapshot = mark
        self._last_index = index if self._last_index is None else max(self._last_index, index)
        self._cut_if_full()

    def sync(self) -> None:
        """Make everything written so far durable."""
        started = time.perf_counter()
        os.fdatasync(self._require_fd())
        if self.on_sync is not None:
            self.on_sync(time.perf_counter() - started)

    def cut(self) -> None:
        """Finish the current segment (fsynced) and start a new one for the next entry index."""
        fd = self._require_fd()
        os.fdatasync(fd)
        os.close(fd)
        self._fd = None
        self._create_segment(self._segments[-1].seq + 1)

    def trim_to(self, index: int, term: int) -> None:
        """After a snapshot at `index` is durable: mark it, start a new segment, and delete the segments
        it covers. Callers pass an index they still can rebuild from if the newest snapshot is damaged."""
        if index <= 0:
            return
        self.mark_snapshot(index, term)
        self.sync()
        self.cut()
        self.release_to(index)

    def release_to(self, index: int) -> None:
        """Delete segments whose entries are all at or below ``index`` (a snapshot covers them).

        ``index`` is capped at the newest snapshot mark: entries no mark covers are never released.
        """
        if self._snapshot is None:
            return
        index = min(index, self._snapshot.index)
        segments = self._segments
        released = 0
        while released + 1 < len(segments) and segments[released + 1].first_index <= index + 1:
            released += 1
        if not released:
            return
        for seg in segments[:released]:
            seg.path.unlink()
        del segments[:released]
        fsync_dir(self._dir)

    def close(self) -> None:
        """Sync and close the current segment; the WAL is unusable afterwards."""
        if self._fd is not None:
            os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = None

    def _require_fd(self) -> int:
        if self._fd is None:
            raise RuntimeError("WAL is closed")
        return self._fd

    def _write(self, data: bytes | bytearray) -> None:
        fd = self._require_fd()
        seg = self._segments[-1]
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(fd, view[written:])
        except OSError:
            # Never leave half a record behind: later appends would sit after a "torn tail" and vanish.
            os.ftruncate(fd, seg.size)
            raise
        seg.size += written

    def _cut_if_full(self) -> None:
        # Called after the in-memory state is updated: the new segment's name and header depend on it.
        if self._segments[-1].size > self._segment_bytes:
            self.cut()

    def _create_segment(self, seq: int) -> None:
        first_index = 1 if self._last_index is None else self._last_index + 1
        path = self._dir / _segment_name(seq, first_index)
        fd = os.open(path, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, 0o644)
        head = b""
        if self._state != HardState():
            head += _encode_state(self._state)
        if self._snapshot is not None:
            head += _encode_mark(self._snapshot)
        try:
            if head:
                os.write(fd, head)
            os.fsync(fd)
            fsync_dir(self._dir)
        except OSError:
            os.close(fd)
            raise
        self._segments.append(_Segment(seq, first_index, path, len(head)))
        self._fd = fd
