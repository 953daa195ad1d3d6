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

SNAPSHOT_FORMAT = 1


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
        doc = orjson.loads(data)
        if doc.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown snapshot format {doc.get('format')!r}")
        self.store = MVCCStore.rebuild(
            base_revision=doc["base_revision"],
            base=(_kv_from_wire(kv) for kv in doc["base"]),
            history=((rev, _events_from_wire(flat)) for rev, flat in doc["history"]),
            revision=doc["revision"],
            compact_revision=doc["compact_revision"],
        )
        self.applied_index = doc["applied_index"]


class KVSnapshot:
    """A snapshot of the state machine at `index`, serialized from a store view (see MVCCStore.view)."""

    __slots__ = ("index", "_view")

    def __init__(self, index: int, view: StoreView) -> None:
        self.index = index
        self._view = view

    def serialize(self) -> bytes:
        """orjson text; bytes travel as latin-1 strings (one code point per byte, exact round trip)."""
        view = self._view
        return orjson.dumps(
            {
                "format": SNAPSHOT_FORMAT,
                "applied_index": self.index,
                "revision": view.revision,
                "compact_revision": view.compact_revision,
                "base_revision": view.base_revision,
                "base": [_kv_to_wire(kv) for kv in view.base()],
                "history": [[rev, _events_to_wire(events)] for rev, events in view.history()],
            }
        )

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
