"""The calls corralctl needs beyond `Client`'s methods: answers with their headers, election and lock.

etcdctl prints the response header of member and lease-list calls (`Client.members()` returns the members
only), and elect/lock run on the server's election and lock routes, which both Corral and etcd 3.4's
gateway serve. Campaign and lock wait for as long as the election or lock takes, so they are sent with
no read timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson
from corral.client import _wire
from corral.client._models import Header, KeyValue, Member, b64, i64
from corral.client._sync import Client
from corral.client.txn import encode

__all__ = [
    "ElectionLeader",
    "LeaseListing",
    "Locked",
    "MemberChange",
    "campaign",
    "election_leader",
    "lease_list",
    "lock",
    "member_add",
    "member_list",
    "member_promote",
    "member_remove",
    "member_update",
    "observe",
    "resign",
    "unlock",
]

T = TypeVar("T")
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A membership answer: the header, the members after the change, and the member added (add only)."""

    header: Header
    members: list[Member]
    added: Member | None = None

    @classmethod
    def decode(cls, data: Json) -> MemberChange:
        added = Member.decode(data["member"]) if data.get("member") else None
        members = [Member.decode(m) for m in data.get("members") or ()]
        return cls(Header.decode(data.get("header")), members, added)


@dataclass(frozen=True, slots=True)
class LeaseListing:
    header: Header
    ids: list[int]

    @classmethod
    def decode(cls, data: Json) -> LeaseListing:
        return cls(Header.decode(data.get("header")), [i64(item.get("ID")) for item in data.get("leases") or ()])


@dataclass(frozen=True, slots=True)
class ElectionLeader:
    """An election's leader as `/v3/election/leader` and `/v3/election/observe` give it."""

    header: Header
    kv: KeyValue

    @classmethod
    def decode(cls, data: Json) -> ElectionLeader:
        return cls(Header.decode(data.get("header")), KeyValue.decode(data.get("kv") or {}))


@dataclass(frozen=True, slots=True)
class Locked:
    """A held lock: its key (the fencing token is that key's create revision) and the answer's header."""

    header: Header
    key: bytes

    @classmethod
    def decode(cls, data: Json) -> Locked:
        return cls(Header.decode(data.get("header")), b64(data.get("key")))


def member_list(client: Client) -> MemberChange:
    return client.call(_wire.Call("/v3/cluster/member/list", {}, MemberChange.decode, True))


def member_add(client: Client, peer_urls: list[str], learner: bool) -> MemberChange:
    body: Json = {"peerURLs": peer_urls}
    if learner:
        body["isLearner"] = True
    return client.call(_wire.Call("/v3/cluster/member/add", body, MemberChange.decode, False))


def member_remove(client: Client, member_id: int) -> MemberChange:
    return client.call(_wire.Call("/v3/cluster/member/remove", {"ID": str(member_id)}, MemberChange.decode, False))


def member_update(client: Client, member_id: int, peer_urls: list[str]) -> MemberChange:
    body = {"ID": str(member_id), "peerURLs": peer_urls}
    return client.call(_wire.Call("/v3/cluster/member/update", body, MemberChange.decode, True))


def member_promote(client: Client, member_id: int) -> MemberChange:
    return client.call(_wire.Call("/v3/cluster/member/promote", {"ID": str(member_id)}, MemberChange.decode, False))


def lease_list(client: Client) -> LeaseListing:
    return client.call(_wire.Call("/v3/lease/leases", {}, LeaseListing.decode, True))


def _blocking(client: Client, call: _wire.Call[T]) -> T:
    """A unary call that may wait indefinitely (campaign, lock): no read timeout, no retry."""
    response = client.open_stream(call.path, call.content(), httpx.Timeout(client.timeout, read=None))
    try:
        content = response.read()
    finally:
        response.close()
    return _wire.result(call, response.status_code, content)


def _leader_json(data: Json) -> Json:
    return dict(data.get("leader") or {})


def campaign(client: Client, name: bytes, lease_id: int, value: bytes) -> Json:
    """Stand and wait to lead; returns the leader key (`name`, `key`, `rev`, `lease`, base64 as sent)."""
    body = {"name": encode(name), "lease": str(lease_id), "value": encode(value)}
    return _blocking(client, _wire.Call("/v3/election/campaign", body, _leader_json, False))


def election_leader(client: Client, name: bytes) -> ElectionLeader:
    return client.call(_wire.Call("/v3/election/leader", {"name": encode(name)}, ElectionLeader.decode, True))


def resign(client: Client, leader: Json) -> None:
    client.call(_wire.Call("/v3/election/resign", {"leader": leader}, _wire.header_of, True))


def observe(client: Client, name: bytes) -> httpx.Response:
    """The open `/v3/election/observe` stream (one `{"result": {header, kv}}` line per leader)."""
    content = orjson.dumps({"name": encode(name)})
    return client.open_stream("/v3/election/observe", content, httpx.Timeout(client.timeout, read=None))


def lock(client: Client, name: bytes, lease_id: int) -> Locked:
    body = {"name": encode(name), "lease": str(lease_id)}
    return _blocking(client, _wire.Call("/v3/lock/lock", body, Locked.decode, False))


def unlock(client: Client, key: bytes) -> None:
    client.call(_wire.Call("/v3/lock/unlock", {"key": encode(key)}, _wire.header_of, True))
