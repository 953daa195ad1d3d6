"""Typed results, decoded from etcd's JSON (base64 bytes, int64 as strings, zero values left out).

Every decoder fills proto3 defaults, so a field the server leaves out is a zero, never a KeyError.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DeleteResult",
    "Event",
    "EventType",
    "Header",
    "KeyValue",
    "LeaseGrant",
    "LeaseInfo",
    "Member",
    "PutResult",
    "RangeResult",
    "Status",
    "TxnResult",
    "WatchResponse",
]

Json = dict[str, Any]


def b64(value: Any) -> bytes:
    return base64.b64decode(value) if value else b""


def i64(value: Any) -> int:
    return int(value) if value else 0


@dataclass(frozen=True, slots=True)
class Header:
    """A response header: the store revision the answer was served at, and who served it."""

    revision: int = 0
    cluster_id: int = 0
    member_id: int = 0
    raft_term: int = 0

    @classmethod
    def decode(cls, data: Json | None) -> Header:
        if not data:
            return _EMPTY_HEADER
        return cls(
            i64(data.get("revision")), i64(data.get("cluster_id")), i64(data.get("member_id")),
            i64(data.get("raft_term")),
        )  # fmt: skip


_EMPTY_HEADER = Header()


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of a key. `create_revision` of the live version is its fencing token."""

    key: bytes
    value: bytes = b""
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    lease: int = 0

    @property
    def key_str(self) -> str:
        return self.key.decode()

    @property
    def value_str(self) -> str:
        return self.value.decode()

    @classmethod
    def decode(cls, data: Json) -> KeyValue:
        return cls(
            b64(data.get("key")), b64(data.get("value")), i64(data.get("create_revision")),
            i64(data.get("mod_revision")), i64(data.get("version")), i64(data.get("lease")),
        )  # fmt: skip


def _kvs(items: list[Json] | None) -> list[KeyValue]:
    return [KeyValue.decode(item) for item in items or ()]


def _kv(item: Json | None) -> KeyValue | None:
    return KeyValue.decode(item) if item else None


@dataclass(frozen=True, slots=True)
class RangeResult:
    """The keys a get found; `count` is how many matched (more than `kvs` when limited)."""

    header: Header
    kvs: list[KeyValue]
    count: int = 0
    more: bool = False

    def __iter__(self) -> Any:
        return iter(self.kvs)

    def __len__(self) -> int:
        return len(self.kvs)

    @property
    def first(self) -> KeyValue | None:
        return self.kvs[0] if self.kvs else None

    @property
    def value(self) -> bytes | None:
        """The first key's value, or None when nothing matched (the common single-key read)."""
        return self.kvs[0].value if self.kvs else None

    @classmethod
    def decode(cls, data: Json) -> RangeResult:
        return cls(Header.decode(data.get("header")), _kvs(data.get("kvs")), i64(data.get("count")),
                   bool(data.get("more")))  # fmt: skip


@dataclass(frozen=True, slots=True)
class PutResult:
    header: Header
    prev_kv: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.header.revision

    @classmethod
    def decode(cls, data: Json) -> PutResult:
        return cls(Header.decode(data.get("header")), _kv(data.get("prev_kv")))


@dataclass(frozen=True, slots=True)
class DeleteResult:
    header: Header
    deleted: int = 0
    prev_kvs: list[KeyValue] = field(default_factory=list)

    @property
    def revision(self) -> int:
        return self.header.revision

    @classmethod
    def decode(cls, data: Json) -> DeleteResult:
        return cls(Header.decode(data.get("header")), i64(data.get("deleted")), _kvs(data.get("prev_kvs")))


@dataclass(frozen=True, slots=True)
class TxnResult:
    """`succeeded` says which branch ran; `responses` holds one result per operation of that branch."""

    header: Header
    succeeded: bool
    responses: list[RangeResult | PutResult | DeleteResult | TxnResult]

    def __bool__(self) -> bool:
        return self.succeeded

    @property
    def revision(self) -> int:
        return self.header.revision

    @classmethod
    def decode(cls, data: Json) -> TxnResult:
        return cls(Header.decode(data.get("header")), bool(data.get("succeeded")),
                   [_response(item) for item in data.get("responses") or ()])  # fmt: skip


def _response(item: Json) -> RangeResult | PutResult | DeleteResult | TxnResult:
    if "response_range" in item:
        return RangeResult.decode(item["response_range"])
    if "response_put" in item:
        return PutResult.decode(item["response_put"])
    if "response_delete_range" in item:
        return DeleteResult.decode(item["response_delete_range"])
    return TxnResult.decode(item.get("response_txn") or {})


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Event:
    """One change. A DELETE's `kv` holds the key and the delete's revision only."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @property
    def key(self) -> bytes:
        return self.kv.key

    @property
    def value(self) -> bytes:
        return self.kv.value

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    @classmethod
    def decode(cls, data: Json) -> Event:
        kind = EventType.DELETE if data.get("type") in ("DELETE", 1) else EventType.PUT
        return cls(kind, KeyValue.decode(data.get("kv") or {}), _kv(data.get("prev_kv")))


@dataclass(frozen=True, slots=True)
class WatchResponse:
    """One message of a watch stream: the events of one or more whole revisions, or a notice."""

    header: Header
    events: list[Event]
    watch_id: int = 0
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""
    fragment: bool = False

    @classmethod
    def decode(cls, data: Json) -> WatchResponse:
        return cls(
            Header.decode(data.get("header")), [Event.decode(e) for e in data.get("events") or ()],
            i64(data.get("watch_id")), bool(data.get("created")), bool(data.get("canceled")),
            i64(data.get("compact_revision")), str(data.get("cancel_reason") or ""), bool(data.get("fragment")),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    header: Header
    id: int
    ttl: int

    @classmethod
    def decode(cls, data: Json) -> LeaseGrant:
        return cls(Header.decode(data.get("header")), i64(data.get("ID")), i64(data.get("TTL")))


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease's time to live: `ttl` seconds left (-1 when the lease does not exist), `granted_ttl`, keys."""

    header: Header
    id: int
    ttl: int
    granted_ttl: int = 0
    keys: list[bytes] = field(default_factory=list)

    @classmethod
    def decode(cls, data: Json) -> LeaseInfo:
        return cls(Header.decode(data.get("header")), i64(data.get("ID")), i64(data.get("TTL")),
                   i64(data.get("grantedTTL")), [b64(k) for k in data.get("keys") or ()])  # fmt: skip


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    name: str = ""
    peer_urls: list[str] = field(default_factory=list)
    client_urls: list[str] = field(default_factory=list)
    is_learner: bool = False

    @classmethod
    def decode(cls, data: Json) -> Member:
        return cls(i64(data.get("ID")), str(data.get("name") or ""), list(data.get("peerURLs") or ()),
                   list(data.get("clientURLs") or ()), bool(data.get("isLearner")))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Status:
    """A member's view of itself (`endpoint status`)."""

    header: Header
    version: str = ""
    db_size: int = 0
    db_size_in_use: int = 0
    leader: int = 0
    raft_index: int = 0
    raft_term: int = 0
    raft_applied_index: int = 0
    is_learner: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def is_leader(self) -> bool:
        return self.leader != 0 and self.leader == self.header.member_id

    @classmethod
    def decode(cls, data: Json) -> Status:
        return cls(
            Header.decode(data.get("header")), str(data.get("version") or ""), i64(data.get("dbSize")),
            i64(data.get("dbSizeInUse")), i64(data.get("leader")), i64(data.get("raftIndex")),
            i64(data.get("raftTerm")), i64(data.get("raftAppliedIndex")), bool(data.get("isLearner")),
            list(data.get("errors") or ()),
        )  # fmt: skip
