"""Snapshot files: what `/v3/maintenance/snapshot` streams, and what `corral snapshot status|restore` read.

A snapshot file (what `corralctl snapshot save` or `etcdctl snapshot save` writes from the stream) is the
member's state machine snapshot, the bytes `KVSnapshot.serialize` makes (JSON lines: a header with the
revision, the compaction point, the applied index and the lease table, then the key-values at the first
retained revision and every retained revision's events), followed by the 32-byte SHA-256 of those bytes,
as etcd follows its database file with one. Restoring checks the digest, as `etcdutl snapshot restore`
does, then writes a data directory a single-member Corral starts from: that snapshot in the member's
snapshot directory and an empty WAL marked as starting after it, what a member's own snapshot leaves.
"""

from __future__ import annotations

import hashlib
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

from corral.consensus.snapfile import SnapshotFiles
from corral.consensus.wal import WAL, fsync_dir
from corral.store.mvcc import FROM_KEY
from corral.store.state_machine import KVStateMachine

CHUNK_BYTES = 32 * 1024  # bytes of snapshot per stream message, as etcd sends them
DIGEST_BYTES = hashlib.sha256().digest_size
RESTORED_TERM = 1  # the term a restored snapshot is filed under; the member starts at the next one


class SnapshotFileError(Exception):
    """The file is not a whole Corral snapshot, or the data directory cannot be made from it."""


@dataclass(frozen=True, slots=True)
class SnapshotStatus:
    """What `corral snapshot status` prints, in etcdctl's columns."""

    hash: int  # CRC-32 (IEEE) of the snapshot's bytes, without the digest
    revision: int
    total_keys: int  # keys that exist at `revision`
    total_size: int  # bytes of snapshot, without the digest
    compact_revision: int
    applied_index: int


def read(path: Path, skip_hash_check: bool = False) -> bytes:
    """The snapshot's bytes in the file at `path`, its SHA-256 checked (unless `skip_hash_check`)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SnapshotFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) <= DIGEST_BYTES:
        raise SnapshotFileError(f"{path} is too short to be a snapshot ({len(raw)} bytes)")
    data, digest = raw[:-DIGEST_BYTES], raw[-DIGEST_BYTES:]
    if not skip_hash_check and hashlib.sha256(data).digest() != digest:
        got = hashlib.sha256(data).hexdigest()
        raise SnapshotFileError(f"{path}: expected sha256 {digest.hex()}, got {got} (a damaged or partial file)")
    return data


def load(data: bytes) -> KVStateMachine:
    """A state machine holding the snapshot `data` (which this checks can be read whole)."""
    state = KVStateMachine()
    try:
        state.restore(data)
    except (ValueError, KeyError, TypeError, IndexError, UnicodeError) as exc:
        raise SnapshotFileError(f"not a Corral snapshot ({type(exc).__name__}: {exc})") from None
    return state


def status(path: Path) -> SnapshotStatus:
    data = read(path)
    return _status(data, load(data))


def _status(data: bytes, state: KVStateMachine) -> SnapshotStatus:
    store = state.store
    _, keys, _ = store.range(FROM_KEY, FROM_KEY, count_only=True)
    return SnapshotStatus(zlib.crc32(data), store.revision, keys, len(data), store.compact_revision,
                          state.applied_index)  # fmt: skip


def restore(path: Path, data_dir: Path, skip_hash_check: bool = False) -> SnapshotStatus:
    """Make `data_dir` (absent or empty) the data directory of a member that starts with the snapshot's
    state, as a single member: its snapshot files and WAL, nothing else (the member's name and ids come
    from the flags it is started with)."""
    data = read(path, skip_hash_check)
    state = load(data)
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise SnapshotFileError(f'data-dir "{data_dir}" not empty or could not be read')
    created = not data_dir.exists()
    member = data_dir / "member"  # the layout SingleNodeLog reads: member/snap and member/wal
    try:
        SnapshotFiles(member / "snap").save(state.applied_index, RESTORED_TERM, data)
        wal, _ = WAL.open(member / "wal")
        try:
            # as after a member's own snapshot: a mark, and a fresh segment for the entries after it
            wal.trim_to(state.applied_index, RESTORED_TERM)
        finally:
            wal.close()
        for directory in (member, data_dir, *((data_dir.parent,) if created else ())):
            fsync_dir(directory)
    except OSError as exc:
        shutil.rmtree(data_dir if created else member, ignore_errors=True)
        raise SnapshotFileError(f"cannot write {data_dir}: {exc.strerror or exc}") from None
    return _status(data, state)
