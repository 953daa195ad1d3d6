"""The store as a replicated state machine: log entries in, results out, snapshots both ways.

`apply` is deterministic: it reads no clock and draws no random number, so every replica that applies
the same entries in the same order holds the same state. A request that fails (a compare on a
compacted revision, an unknown lease) changes nothing and its error is the result.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson

from . import kv
from .commands import Command, CommandDecodeError, decode
from .errors import EtcdError
from .mvcc import MVCCStore, StoreView
from .types import (
    CompactionRequest,
    CompactionResponse,
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    PutRequest,
    PutResponse,
    TxnRequest,
    TxnResponse,
)

logger = logging.getLogger(__name__)

Result = PutResponse | DeleteRangeResponse | TxnResponse | CompactionResponse | EtcdError | None

SNAPSHOT_FORMAT = 2


class KVStateMachine:
    """Applies commands to an MVCC store and tracks the last applied log index."""

    def __init__(self) -> None:
        self.store = MVCCStore()
        self.applied_index = 0

    def lease_exists(self, lease_id: int) -> bool:
        return False  # leases arrive with their own commands; until one is granted, none exists

    def apply(self, index: int, data: bytes, decoded: object | None = None) -> Result:
        """Apply the entry at `index`. Entries at or below the applied index are skipped (replay).

        `decoded` is the command `data` encodes, when the caller has it at hand (the proposing node).
        """
        if index <= self.applied_index:
            return None
        self.applied_index = index
        if not data:
            return None  # an empty entry (a new leader's no-op) changes nothing
        if isinstance(decoded, (PutRequest, DeleteRangeRequest, TxnRequest, CompactionRequest)):
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
        except EtcdError as error:
            return error
        raise TypeError(f"not a command: {command!r}")

    # -- snapshots ---------------------------------------------------------------------------------

    def snapshot(self) -> KVSnapshot:
        return KVSnapshot(self.applied_index, self.store.view())

    def restore(self, data: bytes) -> None:
        lines = iter(data.split(b"\n"))
        head = orjson.loads(next(lines, b"{}"))
        if head.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown snapshot format {head.get('format')!r}")
        chunks = [orjson.loads(line) for line in lines]
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


class KVSnapshot:
    """A snapshot of the state machine at `index`, serialized from a store view (see MVCCStore.view)."""

    __slots__ = ("index", "_view")

    def __init__(self, index: int, view: StoreView) -> None:
        self.index = index
        self._view = view

    def serialize(self) -> bytes:
        """JSON lines: a header, then chunks of base key-values and of history.

        Bytes travel as latin-1 strings (one code point per byte, an exact round trip). Chunks keep each
        orjson call short: it holds the GIL while it runs, and this runs beside the event loop.
        """
        view = self._view
        head = {
            "format": SNAPSHOT_FORMAT,
            "applied_index": self.index,
            "revision": view.revision,
            "compact_revision": view.compact_revision,
            "base_revision": view.base_revision,
        }
        lines = [orjson.dumps(head)]
        lines += (orjson.dumps(["base", chunk]) for chunk in _chunks(map(_kv_to_wire, view.base())))
        history = ([rev, _events_to_wire(events)] for rev, events in view.history())
        lines += (orjson.dumps(["history", chunk]) for chunk in _chunks(history))
        return b"\n".join(lines)

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
SNAPSHOT_CHUNK = 1000


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
