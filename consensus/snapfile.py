"""Snapshot files: one checksummed file per snapshot, written atomically, newest few kept.

File layout: magic ``CRLSNAP1``, u64 index, u64 term, u32 crc32(data), u64 len(data), data. A file that
fails its check is renamed to ``*.broken`` and the next older snapshot is used instead.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from .wal import fsync_dir

logger = logging.getLogger(__name__)

MAGIC = b"CRLSNAP1"
_HEADER = struct.Struct("<8sQQIQ")  # magic, index, term, crc32(data), len(data)
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


@dataclass(slots=True, frozen=True)
class Snapshot:
    index: int
    term: int
    data: bytes


class SnapshotFiles:
    """The snapshot files in one directory; not thread-safe, call from one worker at a time."""

    def __init__(self, directory: Path, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.directory = directory
        self.keep = keep
        directory.mkdir(parents=True, exist_ok=True)

    def save(self, index: int, term: int, data: bytes) -> Path:
        """Durably write a snapshot, then delete all but the newest ``keep`` snapshots."""
        path = self.directory / f"{term:016x}-{index:016x}.snap"
        tmp = path.with_name(path.name + ".tmp")
        header = _HEADER.pack(MAGIC, index, term, zlib.crc32(data), len(data))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            for chunk in (memoryview(header), memoryview(data)):
                while chunk:
                    chunk = chunk[os.write(fd, chunk) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(self.directory)
        self._purge()
        return path

    def load_newest(self) -> Snapshot | None:
        """Return the newest snapshot that passes its check, setting aside broken ones; ``None`` if none."""
        for tmp in self.directory.glob("*.snap.tmp"):
            tmp.unlink()
        for path, index, term in self._list():
            problem = _check(path.read_bytes(), index, term)
            if isinstance(problem, Snapshot):
                return problem
            logger.warning("snapshot %s is broken (%s); renaming it to .broken", path.name, problem)
            os.replace(path, path.with_name(path.name + ".broken"))
            fsync_dir(self.directory)
        return None

    def _list(self) -> list[tuple[Path, int, int]]:
        """Snapshot files as (path, index, term), newest (highest index, then term) first."""
        found = []
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match is not None:
                found.append((path, int(match[2], 16), int(match[1], 16)))
        found.sort(key=lambda item: (item[1], item[2]), reverse=True)
        return found

    def _purge(self) -> None:
        old = self._list()[self.keep :]
        for path, _, _ in old:
            path.unlink()
        if old:
            fsync_dir(self.directory)


def _check(raw: bytes, index: int, term: int) -> Snapshot | str:
    """Decode a snapshot file, or say what is wrong with it."""
    if len(raw) < _HEADER.size:
        return "short header"
    magic, got_index, got_term, crc, length = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        return "bad magic"
    if (got_index, got_term) != (index, term):
        return f"header says index {got_index} term {got_term}, name disagrees"
    data = raw[_HEADER.size :]
    if len(data) != length:
        return f"length {len(data)}, header says {length}"
    if zlib.crc32(data) != crc:
        return "crc mismatch"
    return Snapshot(index, term, data)
