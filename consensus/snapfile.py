"""Snapshot files: a checksummed manifest per snapshot naming its chunks, all written atomically.

A snapshot's data is the concatenation of its chunks. A chunk is named by the state machine so that equal
names mean equal contents; a chunk already on disk from an earlier snapshot is not written again, so a
snapshot costs what changed since the last one (the MVCC store's history chunks never change).

Manifest file (``<term>-<index>.snap``): magic ``CRLSNAP1``, u64 index, u64 term, u32 crc32(data),
u64 len(data), data = the chunk names, one per line. Chunk file (``chunks/<name>.chunk``): magic
``CRLCHNK1``, u32 crc32, u64 length, the bytes. A snapshot whose manifest or any chunk fails its check is
set aside (the manifest renamed to ``*.broken``) and the next older snapshot is used instead.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .wal import fsync_dir

logger = logging.getLogger(__name__)

MAGIC = b"CRLSNAP1"
CHUNK_MAGIC = b"CRLCHNK1"
_HEADER = struct.Struct("<8sQQIQ")  # magic, index, term, crc32(data), len(data)
_CHUNK_HEADER = struct.Struct("<8sIQ")  # magic, crc32(data), len(data)
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")
_CHUNK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

Chunk = tuple[str, Callable[[], bytes]]  # a name, and how to produce the bytes if they are not on disk


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
        self._size: int | None = None  # bytes on disk, recomputed after the files change
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def chunk_directory(self) -> Path:
        return self.directory / "chunks"

    def save(self, index: int, term: int, data: bytes) -> Path:
        """Durably write a snapshot held in one piece (see `save_chunks`)."""
        return self.save_chunks(index, term, [(f"blob-{term:016x}-{index:016x}", lambda: data)])

    def save_chunks(self, index: int, term: int, chunks: Sequence[Chunk]) -> Path:
        """Durably write the chunks not already on disk, then the manifest; keep the newest ``keep``."""
        self._size = None
        chunk_dir = self.chunk_directory
        chunk_dir.mkdir(exist_ok=True)
        for name, produce in chunks:
            if not _CHUNK_NAME.match(name):
                raise ValueError(f"bad chunk name {name!r}")
            path = chunk_dir / f"{name}.chunk"
            if not path.exists():
                data = produce()
                _write_atomically(path, _CHUNK_HEADER.pack(CHUNK_MAGIC, zlib.crc32(data), len(data)), data)
        fsync_dir(chunk_dir)
        manifest = "\n".join(name for name, _ in chunks).encode()
        path = self.directory / f"{term:016x}-{index:016x}.snap"
        _write_atomically(path, _HEADER.pack(MAGIC, index, term, zlib.crc32(manifest), len(manifest)), manifest)
        fsync_dir(self.directory)
        self._purge()
        return path

    def load_newest(self) -> Snapshot | None:
        """Return the newest snapshot that passes its check, setting aside broken ones; ``None`` if none."""
        for tmp in [*self.directory.glob("*.tmp"), *self.chunk_directory.glob("*.tmp")]:
            tmp.unlink()
        for path, index, term in self._list():
            problem = _check(path.read_bytes(), index, term)
            if isinstance(problem, bytes):
                problem = self._assemble(index, term, problem)
            if isinstance(problem, Snapshot):
                return problem
            logger.warning("snapshot %s is broken (%s); renaming it to .broken", path.name, problem)
            os.replace(path, path.with_name(path.name + ".broken"))
            self._size = None
            fsync_dir(self.directory)
        return None

    def size_bytes(self) -> int:
        if self._size is None:
            files = [*self.directory.glob("*.snap"), *self.chunk_directory.glob("*.chunk")]
            self._size = sum(path.stat().st_size for path in files)
        return self._size

    def _assemble(self, index: int, term: int, manifest: bytes) -> Snapshot | str:
        parts = []
        for name in manifest.decode().split("\n") if manifest else []:
            try:
                raw = (self.chunk_directory / f"{name}.chunk").read_bytes()
            except FileNotFoundError:
                return f"chunk {name} is missing"
            part = _check_chunk(raw)
            if isinstance(part, str):
                return f"chunk {name}: {part}"
            parts.append(part)
        return Snapshot(index, term, b"".join(parts))

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
        self._size = None
        kept, old = self._list()[: self.keep], self._list()[self.keep :]
        for path, _, _ in old:
            path.unlink()
        if old:
            fsync_dir(self.directory)
        referenced = set()
        for path, index, term in kept:
            manifest = _check(path.read_bytes(), index, term)
            if isinstance(manifest, bytes) and manifest:
                referenced.update(f"{name}.chunk" for name in manifest.decode().split("\n"))
        unused = [path for path in self.chunk_directory.glob("*.chunk") if path.name not in referenced]
        for path in unused:
            path.unlink()
        if unused:
            fsync_dir(self.chunk_directory)


def _write_atomically(path: Path, header: bytes, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        for piece in (memoryview(header), memoryview(data)):
            while piece:
                piece = piece[os.write(fd, piece) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _check_chunk(raw: bytes) -> bytes | str:
    if len(raw) < _CHUNK_HEADER.size:
        return "short header"
    magic, crc, length = _CHUNK_HEADER.unpack_from(raw)
    data = raw[_CHUNK_HEADER.size :]
    if magic != CHUNK_MAGIC:
        return "bad magic"
    if len(data) != length:
        return f"length {len(data)}, header says {length}"
    if zlib.crc32(data) != crc:
        return "crc mismatch"
    return data


def _check(raw: bytes, index: int, term: int) -> bytes | str:
    """A manifest file's data (the chunk names), or what is wrong with it."""
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
    return data
