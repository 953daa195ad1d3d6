"""The store as a replicated state machine: log entries in, results out, snapshots both ways.

`apply` is deterministic: it reads no clock and draws no random number, so every replica that applies
the same entries in the same order holds the same state. A request that fails (a compare on a
compacted revision, an unknown lease) changes nothing and its error is the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import orjson

from . import kv
from .commands import Command, CommandDecodeError, decode
from .errors import EtcdError
from .lease import LeaseTable
from .mvcc import MVCCStore, StoreView
from .types import (
    CompactionRequest,
    CompactionResponse,
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    PutRequest,
    PutResponse,
    TxnRequest,
    TxnResponse,
)

logger = logging.getLogger(__name__)

_COMMANDS = (PutRequest, DeleteRangeRequest, TxnRequest, CompactionRequest, LeaseGrantRequest, LeaseRevokeRequest)

Result = (
    PutResponse | DeleteRangeResponse | TxnResponse | CompactionResponse | LeaseGrantResponse | LeaseRevokeResponse
    | EtcdError | None
)  # fmt: skip

SNAPSHOT_FORMAT = 3  # 3 added the leases to the header; 2 (no leases) is still read


class KVStateMachine:
    """Applies commands to an MVCC store and tracks the last applied log index."""

    def __init__(self) -> None:
        self.store = MVCCStore()
        self.leases = LeaseTable(self.store)
        self.applied_index = 0
        self.restore_listeners: list[Callable[[MVCCStore], None]] = []  # told when a snapshot replaces the store

    def lease_exists(self, lease_id: int) -> bool:
        return self.leases.exists(lease_id)

    def apply(self, index: int, data: bytes, decoded: object | None = None) -> Result:
        """Apply the entry at `index`. Entries at or below the applied index are skipped (replay).

        `decoded` is the command `data` encodes, when the caller has it at hand (the proposing node).
        """
        if index <= self.applied_index:
            return None
        self.applied_index = index
        if not data:
            return None  # an empty entry (a new leader's no-op) changes nothing
        if isinstance(decoded, _COMMANDS):
            return self.apply_command(decoded)
        try:
            command = decode(data)
        except CommandDecodeError:
            logger.exception("skipping log entry %d: not a command", index)
            return None
        return self.apply_command(command)

    def apply_command(self, command: Command) -> Result:
        try:
            if isinstance(command, PutRequest):
                return kv.put(self.store, command, self.lease_exists)
            if isinstance(command, DeleteRangeRequest):
                return kv.delete_range(self.store, command)
            if isinstance(command, TxnRequest):
                return kv.txn(self.store, command, self.lease_exists)
            if isinstance(command, CompactionRequest):
                return kv.compact(self.store, command)
            if isinstance(command, LeaseGrantRequest):
                return self.leases.grant(command)
            if isinstance(command, LeaseRevokeRequest):
                return self.leases.revoke(command)
        except EtcdError as error:
            return error
        raise TypeError(f"not a command: {command!r}")

    # -- snapshots ---------------------------------------------------------------------------------

    def snapshot(self) -> KVSnapshot:
        return KVSnapshot(self.applied_index, self.store.view(), self.leases.items())

    def restore(self, data: bytes) -> None:
        lines = iter(data.split(b"\n"))
        head = orjson.loads(next(lines, b"{}"))
        if head.get("format") not in (2, SNAPSHOT_FORMAT):
            raise ValueError(f"unknown snapshot format {head.get('format')!r}")
        chunks = [orjson.loads(line) for line in lines if line]
        self.store = MVCCStore.rebuild(
            base_revision=head["base_revision"],
            base=(_kv_from_wire(kv) for kind, items in chunks if kind == "base" for kv in items),
            history=(
                (rev, _events_from_wire(flat))
                for kind, items in chunks
                if kind == "history"
                for rev, flat in items
            ),
            revision=head["revision"],
            compact_revision=head["compact_revision"],
        )
        self.applied_index = head["applied_index"]
        self.leases.attach_to(self.store)
        self.leases.restore((lease_id, ttl) for lease_id, ttl in head.get("leases", ()))
        for listener in self.restore_listeners:
            listener(self.store)


class KVSnapshot:
    """A snapshot of the state machine at `index`, read from a store view (see MVCCStore.view).

    The data is JSON lines: a header, the base key-values, then the history. It comes in chunks: the
    header, the base (named by its revision) and the history in blocks of revisions (named by their
    range). A block of history never changes once written, so successive snapshots share all but the
    newest blocks. Bytes travel as latin-1 strings (one code point per byte, an exact round trip).
    """

    __slots__ = ("index", "_view", "_leases")

    def __init__(self, index: int, view: StoreView, leases: list[tuple[int, int]]) -> None:
        self.index = index
        self._view = view
        self._leases = leases

    def chunks(self) -> list[tuple[str, Callable[[], bytes]]]:
        view = self._view
        chunks: list[tuple[str, Callable[[], bytes]]] = [
            (f"kv-head-{self.index:016x}", self._head),
            (f"kv-base-{view.base_revision:016x}", self._base),
        ]
        first = view.base_revision
        while first <= view.revision:
            last = min((first // HISTORY_BLOCK + 1) * HISTORY_BLOCK - 1, view.revision)
            chunks.append((f"kv-hist-{first:016x}-{last:016x}", partial(self._history, first, last)))
            first = last + 1
        return chunks

    def serialize(self) -> bytes:
        return b"".join(produce() for _, produce in self.chunks())

    def _head(self) -> bytes:
        view = self._view
        head = {
            "format": SNAPSHOT_FORMAT,
            "applied_index": self.index,
            "revision": view.revision,
            "compact_revision": view.compact_revision,
            "base_revision": view.base_revision,
            "leases": self._leases,
        }
        return orjson.dumps(head) + b"\n"

    def _base(self) -> bytes:
        # Each orjson call stays short: it holds the GIL, and this runs beside the event loop.
        return b"".join(orjson.dumps(["base", c]) + b"\n" for c in _chunks(map(_kv_to_wire, self._view.base())))

    def _history(self, first: int, last: int) -> bytes:
        revisions = ([rev, _events_to_wire(events)] for rev, events in self._view.history(first, last))
        return b"".join(orjson.dumps(["history", c]) + b"\n" for c in _chunks(revisions))

    def release(self) -> None:
        self._view.release()


def _kv_to_wire(kv: KeyValue) -> list[object]:
    return [
        kv.key.decode("latin-1"), kv.create_revision, kv.mod_revision, kv.version,
        kv.value.decode("latin-1"), kv.lease,
    ]  # fmt: skip


def _kv_from_wire(wire: list[object]) -> KeyValue:
    key, create, mod, version, value, lease = wire
    return KeyValue(
        str(key).encode("latin-1"), int(create), int(mod), int(version),  # type: ignore[call-overload]
        str(value).encode("latin-1"), int(lease),  # type: ignore[call-overload]
    )  # fmt: skip


_EVENT_FIELDS = 7
SNAPSHOT_CHUNK = 1000  # items per JSON line
HISTORY_BLOCK = 10_000  # revisions per history chunk


def _chunks(items: Iterator[list[object]]) -> Iterator[list[list[object]]]:
    chunk: list[list[object]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == SNAPSHOT_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _events_to_wire(events: list[Event]) -> list[object]:
    """A revision's events as one flat list: type, then the kv's six fields, for each event."""
    flat: list[object] = []
    for event in events:
        kv = event.kv
        flat += (int(event.type), kv.key.decode("latin-1"), kv.create_revision, kv.mod_revision, kv.version,
                 kv.value.decode("latin-1"), kv.lease)  # fmt: skip
    return flat


def _events_from_wire(flat: list[Any]) -> Iterator[tuple[EventType, KeyValue]]:
    for i in range(0, len(flat), _EVENT_FIELDS):
        kind, key, create, mod, version, value, lease = flat[i : i + _EVENT_FIELDS]
        yield EventType(kind), KeyValue(key.encode("latin-1"), create, mod, version, value.encode("latin-1"), lease)
