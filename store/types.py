"""Values the store takes and returns: key-values, events, requests and responses.

The shapes follow etcd's `etcdserverpb` and `mvccpb` messages. Response headers are not here: the
store reports the revision a request saw, and the API layer adds cluster, member and term.

All of these are values and are never mutated once built. The ones built on every request (key-values,
events, the single-op requests) are plain slotted dataclasses rather than frozen ones, because a frozen
dataclass costs three times as much to construct and they sit on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeAlias


@dataclass(slots=True)
class KeyValue:
    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes = b""
    lease: int = 0


class EventType(IntEnum):
    PUT = 0
    DELETE = 1


@dataclass(slots=True)
class Event:
    """One change at one revision. A DELETE's `kv` holds only the key and the delete revision."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


class SortOrder(IntEnum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(IntEnum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class CompareResult(IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class CompareTarget(IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


@dataclass(slots=True)
class RangeRequest:
    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@dataclass(slots=True)
class PutRequest:
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@dataclass(slots=True)
class DeleteRangeRequest:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(slots=True)
class Compare:
    """A txn guard. `operand` is the field that matches `target` (bytes for VALUE, else an int)."""

    key: bytes
    target: CompareTarget = CompareTarget.VERSION
    result: CompareResult = CompareResult.EQUAL
    operand: int | bytes = 0
    range_end: bytes = b""


@dataclass(slots=True, frozen=True)
class EmptyOp:
    """A RequestOp with no request set; etcd rejects it with `key not found`."""


RequestOp: TypeAlias = "RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest | EmptyOp"


@dataclass(slots=True, frozen=True)
class TxnRequest:
    compare: tuple[Compare, ...] = ()
    success: tuple[RequestOp, ...] = ()
    failure: tuple[RequestOp, ...] = ()


@dataclass(slots=True, frozen=True)
class CompactionRequest:
    revision: int = 0
    physical: bool = False


@dataclass(slots=True, frozen=True)
class LeaseGrantRequest:
    """Grant lease `id` (chosen before proposing: apply draws no random numbers) for `ttl` seconds."""

    id: int
    ttl: int


@dataclass(slots=True, frozen=True)
class LeaseRevokeRequest:
    """Revoke (or expire) a lease: its keys are deleted in one revision."""

    id: int


@dataclass(slots=True)
class RangeResponse:
    revision: int
    kvs: list[KeyValue] = field(default_factory=list)
    more: bool = False
    count: int = 0


@dataclass(slots=True)
class PutResponse:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(slots=True)
class DeleteRangeResponse:
    revision: int
    deleted: int = 0
    prev_kvs: list[KeyValue] = field(default_factory=list)


ResponseOp: TypeAlias = "RangeResponse | PutResponse | DeleteRangeResponse | TxnResponse"


@dataclass(slots=True)
class TxnResponse:
    revision: int
    succeeded: bool = False
    responses: list[ResponseOp] = field(default_factory=list)


@dataclass(slots=True)
class CompactionResponse:
    revision: int


@dataclass(slots=True)
class LeaseGrantResponse:
    revision: int
    id: int
    ttl: int


@dataclass(slots=True)
class LeaseRevokeResponse:
    revision: int
