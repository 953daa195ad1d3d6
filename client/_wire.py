"""Sans-I/O: every call the client makes, as a `Call` (path, JSON body, decoder, retry safety).

`Client` and `AsyncClient` only move bytes; building requests and reading answers happens here, once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from corral.client._errors import ServerError, server_error
from corral.client._models import (
    DeleteResult,
    Header,
    LeaseGrant,
    LeaseInfo,
    Member,
    PutResult,
    RangeResult,
    Status,
    TxnResult,
    i64,
)
from corral.client.txn import (
    Compare,
    DeleteOptions,
    KeyLike,
    Op,
    PutOptions,
    RangeOptions,
    delete_body,
    put_body,
    range_body,
    txn_body,
)

T = TypeVar("T")
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One unary request. `idempotent` calls may be retried even when the request may have been served."""

    path: str
    body: Json
    decode: Callable[[Json], T]
    idempotent: bool

    def content(self) -> bytes:
        return orjson.dumps(self.body)


def result(call: Call[T], status: int, content: bytes) -> T:
    """The decoded answer, or the `ServerError` the server's error body describes."""
    try:
        data = orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:
        raise ServerError(content[:200].decode(errors="replace") or f"HTTP {status}", 2, status) from None
    if status != 200 or (isinstance(data, dict) and isinstance(data.get("error"), dict)):
        raise server_error(data, status)
    return call.decode(data)


def header_of(data: Json) -> Header:
    return Header.decode(data.get("header"))


def range_(key: KeyLike, options: RangeOptions, prefix: bool = False) -> Call[RangeResult]:
    return Call("/v3/kv/range", range_body(key, options, prefix), RangeResult.decode, True)


def put(key: KeyLike, value: KeyLike, options: PutOptions) -> Call[PutResult]:
    return Call("/v3/kv/put", put_body(key, value, options), PutResult.decode, False)


def delete(key: KeyLike, options: DeleteOptions) -> Call[DeleteResult]:
    return Call("/v3/kv/deleterange", delete_body(key, options), DeleteResult.decode, False)


def txn(compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> Call[TxnResult]:
    read_only = all(op.kind == "request_range" for op in (*success, *failure))
    return Call("/v3/kv/txn", txn_body(compare, success, failure), TxnResult.decode, read_only)


def compact(revision: int, physical: bool) -> Call[Header]:
    body: Json = {"revision": str(revision)}
    if physical:
        body["physical"] = True
    return Call("/v3/kv/compaction", body, header_of, True)  # compacting twice is refused, never harmful


def lease_grant(ttl: int, lease_id: int) -> Call[LeaseGrant]:
    body: Json = {"TTL": str(ttl)}
    if lease_id:
        body["ID"] = str(lease_id)
    return Call("/v3/lease/grant", body, LeaseGrant.decode, False)


def lease_revoke(lease_id: int) -> Call[Header]:
    return Call("/v3/lease/revoke", {"ID": str(lease_id)}, header_of, True)


def _keepalive_result(data: Json) -> LeaseGrant:
    return LeaseGrant.decode(data.get("result") or {})


def lease_keep_alive_once(lease_id: int) -> Call[LeaseGrant]:
    """One keep-alive (the gateway's stream with a single request); `ttl` 0 means the lease is gone."""
    return Call("/v3/lease/keepalive", {"ID": str(lease_id)}, _keepalive_result, True)


def lease_time_to_live(lease_id: int, keys: bool) -> Call[LeaseInfo]:
    body: Json = {"ID": str(lease_id)}
    if keys:
        body["keys"] = True
    return Call("/v3/lease/timetolive", body, LeaseInfo.decode, True)


def _lease_ids(data: Json) -> list[int]:
    return [i64(item.get("ID")) for item in data.get("leases") or ()]


def leases() -> Call[list[int]]:
    return Call("/v3/lease/leases", {}, _lease_ids, True)


def _members(data: Json) -> list[Member]:
    return [Member.decode(item) for item in data.get("members") or ()]


def _added_member(data: Json) -> Member:
    return Member.decode(data.get("member") or {})


def member_list() -> Call[list[Member]]:
    return Call("/v3/cluster/member/list", {}, _members, True)


def member_add(peer_urls: Sequence[str], is_learner: bool) -> Call[Member]:
    body: Json = {"peerURLs": list(peer_urls)}
    if is_learner:
        body["isLearner"] = True
    return Call("/v3/cluster/member/add", body, _added_member, False)


def member_remove(member_id: int) -> Call[list[Member]]:
    return Call("/v3/cluster/member/remove", {"ID": str(member_id)}, _members, False)


def member_update(member_id: int, peer_urls: Sequence[str]) -> Call[list[Member]]:
    return Call("/v3/cluster/member/update", {"ID": str(member_id), "peerURLs": list(peer_urls)}, _members, True)


def member_promote(member_id: int) -> Call[list[Member]]:
    return Call("/v3/cluster/member/promote", {"ID": str(member_id)}, _members, False)


def status() -> Call[Status]:
    return Call("/v3/maintenance/status", {}, Status.decode, True)


def _nothing(data: Json) -> None:
    return None


def move_leader(target_id: int) -> Call[None]:
    return Call("/v3/maintenance/transfer-leadership", {"targetID": str(target_id)}, _nothing, False)


def snapshot_chunk(line: bytes) -> bytes:
    """The bytes of one `/v3/maintenance/snapshot` stream message."""
    data = orjson.loads(line)
    if isinstance(data.get("error"), dict):
        raise server_error(data, 200)
    blob = (data.get("result") or {}).get("blob")
    return base64.b64decode(blob) if blob else b""
