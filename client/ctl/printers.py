"""etcdctl's four output formats for every answer corralctl prints.

`simple` is etcdctl's plain text, `json` the shape `etcdctl -w json` writes (int64 as numbers, bytes as
base64, zero values left out as Go's `omitempty` does), `fields` its `"Name" : value` lines and `table`
its boxed tables where etcdctl has one. A format a command has no printer for fails as etcdctl does
(`Error: table not supported as output format`, exit 4).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from corral.client._models import (
    DeleteResult,
    EventType,
    Header,
    KeyValue,
    LeaseGrant,
    LeaseInfo,
    Member,
    PutResult,
    RangeResult,
    Status,
    TxnResult,
    WatchResponse,
)
from corral.client.ctl.common import EXIT_BAD_FEATURE, CtlError, emit, warn
from corral.client.ctl.rpc import LeaseListing, MemberChange
from corral.client.ctl.textfmt import go_duration, go_quote, hex_bytes, human_bytes, table
from corral.client.txn import encode

__all__ = ["FORMATS", "EndpointHealth", "EndpointStatus", "Printer", "to_json"]

FORMATS = ("simple", "json", "fields", "table")
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    endpoint: str
    status: Status


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    endpoint: str
    health: bool
    took: float
    error: str = ""


def to_json(data: Any) -> str:
    """Compact JSON escaped the way Go's encoding/json escapes (HTML characters as \\u00XX)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _omit_empty(pairs: Sequence[tuple[str, Any]]) -> Json:
    return {name: value for name, value in pairs if value}


def header_json(header: Header) -> Json:
    return _omit_empty(
        [
            ("cluster_id", header.cluster_id),
            ("member_id", header.member_id),
            ("revision", header.revision),
            ("raft_term", header.raft_term),
        ]
    )


def kv_json(kv: KeyValue) -> Json:
    return _omit_empty(
        [
            ("key", encode(kv.key) if kv.key else ""),
            ("create_revision", kv.create_revision),
            ("mod_revision", kv.mod_revision),
            ("version", kv.version),
            ("value", encode(kv.value) if kv.value else ""),
            ("lease", kv.lease),
        ]
    )


def range_json(r: RangeResult) -> Json:
    return _omit_empty(
        [
            ("header", header_json(r.header)),
            ("kvs", [kv_json(kv) for kv in r.kvs]),
            ("more", r.more),
            ("count", r.count),
        ]
    )


def put_json(r: PutResult) -> Json:
    return _omit_empty([("header", header_json(r.header)), ("prev_kv", kv_json(r.prev_kv) if r.prev_kv else None)])


def delete_json(r: DeleteResult) -> Json:
    return _omit_empty(
        [("header", header_json(r.header)), ("deleted", r.deleted), ("prev_kvs", [kv_json(kv) for kv in r.prev_kvs])]
    )


def txn_json(r: TxnResult) -> Json:
    responses = []
    for item in r.responses:
        if isinstance(item, RangeResult):
            inner = {"ResponseRange": range_json(item)}
        elif isinstance(item, PutResult):
            inner = {"ResponsePut": put_json(item)}
        elif isinstance(item, DeleteResult):
            inner = {"ResponseDeleteRange": delete_json(item)}
        else:
            inner = {"ResponseTxn": txn_json(item)}
        responses.append({"Response": inner})
    return _omit_empty([("header", header_json(r.header)), ("succeeded", r.succeeded), ("responses", responses)])


def member_json(m: Member) -> Json:
    return _omit_empty(
        [
            ("ID", m.id),
            ("name", m.name),
            ("peerURLs", m.peer_urls),
            ("clientURLs", m.client_urls),
            ("isLearner", m.is_learner),
        ]
    )


def status_json(s: Status) -> Json:
    return _omit_empty(
        [
            ("header", header_json(s.header)),
            ("version", s.version),
            ("dbSize", s.db_size),
            ("leader", s.leader),
            ("raftIndex", s.raft_index),
            ("raftTerm", s.raft_term),
            ("raftAppliedIndex", s.raft_applied_index),
            ("errors", s.errors),
            ("dbSizeInUse", s.db_size_in_use),
            ("isLearner", s.is_learner),
        ]
    )


class Printer:
    """Prints answers in one format; `hex` writes keys and values as `\\xNN` bytes in `simple`."""

    def __init__(self, fmt: str = "simple", hex: bool = False) -> None:
        self.fmt = fmt
        self.hex = hex

    def require(self, *formats: str) -> None:
        """Fail before doing anything when the command has no printer for the chosen format."""
        if self.fmt not in formats:
            raise CtlError(EXIT_BAD_FEATURE, f"{self.fmt} not supported as output format")

    # -- building blocks ---------------------------------------------------------------------------------

    def _bytes(self, data: bytes) -> bytes:
        return hex_bytes(data).encode() if self.hex else data

    def _kv_simple(self, kv: KeyValue, value_only: bool = False) -> bytes:
        key = b"" if value_only else self._bytes(kv.key) + b"\n"
        return key + self._bytes(kv.value) + b"\n"

    @staticmethod
    def _header_fields(h: Header) -> list[str]:
        return [
            f'"ClusterID" : {h.cluster_id}',
            f'"MemberID" : {h.member_id}',
            f'"Revision" : {h.revision}',
            f'"RaftTerm" : {h.raft_term}',
        ]

    @staticmethod
    def _kv_fields(kv: KeyValue, prefix: str = "") -> list[str]:
        return [
            f'"{prefix}Key" : {go_quote(kv.key)}',
            f'"{prefix}CreateRevision" : {kv.create_revision}',
            f'"{prefix}ModRevision" : {kv.mod_revision}',
            f'"{prefix}Version" : {kv.version}',
            f'"{prefix}Value" : {go_quote(kv.value)}',
            f'"{prefix}Lease" : {kv.lease}',
        ]

    @staticmethod
    def _lines(lines: Sequence[str]) -> None:
        emit("".join(line + "\n" for line in lines))

    # -- KV ----------------------------------------------------------------------------------------------

    def get(self, r: RangeResult, print_value_only: bool = False, count_only: bool = False) -> None:
        self.require("simple", "json", "fields")
        if self.fmt == "json":
            self._lines([to_json(range_json(r))])
        elif self.fmt == "fields":
            self._lines(self._range_fields(r))
        elif count_only:
            self._lines([str(r.count)])
        else:
            emit(b"".join(self._kv_simple(kv, print_value_only) for kv in r.kvs))

    def _range_fields(self, r: RangeResult) -> list[str]:
        lines = self._header_fields(r.header)
        for kv in r.kvs:
            lines += self._kv_fields(kv)
        return [*lines, f'"More" : {_go_bool(r.more)}', f'"Count" : {r.count}']

    def put(self, r: PutResult) -> None:
        self.require("simple", "json", "fields")
        if self.fmt == "json":
            self._lines([to_json(put_json(r))])
        elif self.fmt == "fields":
            self._lines(self._put_fields(r))
        else:
            emit(b"OK\n" + (self._kv_simple(r.prev_kv) if r.prev_kv else b""))

    def _put_fields(self, r: PutResult) -> list[str]:
        return self._header_fields(r.header) + (self._kv_fields(r.prev_kv, "Prev") if r.prev_kv else [])

    def delete(self, r: DeleteResult) -> None:
        self.require("simple", "json", "fields")
        if self.fmt == "json":
            self._lines([to_json(delete_json(r))])
        elif self.fmt == "fields":
            self._lines(self._delete_fields(r))
        else:
            emit(f"{r.deleted}\n".encode() + b"".join(self._kv_simple(kv) for kv in r.prev_kvs))

    def _delete_fields(self, r: DeleteResult) -> list[str]:
        lines = [*self._header_fields(r.header), f'"Deleted" : {r.deleted}']
        for kv in r.prev_kvs:
            lines += self._kv_fields(kv, "Prev")
        return lines

    def txn(self, r: TxnResult) -> None:
        self.require("simple", "json", "fields")
        if self.fmt == "json":
            self._lines([to_json(txn_json(r))])
        elif self.fmt == "fields":
            self._lines(self._txn_fields(r))
        else:
            emit(self._txn_simple(r))

    def _txn_simple(self, r: TxnResult) -> bytes:
        out = b"SUCCESS\n" if r.succeeded else b"FAILURE\n"
        for item in r.responses:
            out += b"\n"
            if isinstance(item, RangeResult):
                out += b"".join(self._kv_simple(kv) for kv in item.kvs)
            elif isinstance(item, PutResult):
                out += b"OK\n" + (self._kv_simple(item.prev_kv) if item.prev_kv else b"")
            elif isinstance(item, DeleteResult):
                out += f"{item.deleted}\n".encode() + b"".join(self._kv_simple(kv) for kv in item.prev_kvs)
            else:
                out += self._txn_simple(item)
        return out

    def _txn_fields(self, r: TxnResult) -> list[str]:
        lines = [*self._header_fields(r.header), f'"Succeeded" : {_go_bool(r.succeeded)}']
        for item in r.responses:
            if isinstance(item, RangeResult):
                lines += self._range_fields(item)
            elif isinstance(item, PutResult):
                lines += self._put_fields(item)
            elif isinstance(item, DeleteResult):
                lines += self._delete_fields(item)
            else:
                lines += self._txn_fields(item)
        return lines

    def watch(self, r: WatchResponse) -> None:
        self.require("simple", "json", "fields")
        if self.fmt == "json":
            events = []
            for e in r.events:
                event: Json = {"type": 1} if e.type is EventType.DELETE else {}
                event["kv"] = kv_json(e.kv)
                if e.prev_kv is not None:
                    event["prev_kv"] = kv_json(e.prev_kv)
                events.append(event)
            self._lines(
                [
                    to_json(
                        {
                            "Header": header_json(r.header),
                            "Events": events,
                            "CompactRevision": r.compact_revision,
                            "Canceled": r.canceled,
                            "Created": r.created,
                        }
                    )
                ]
            )
        elif self.fmt == "fields":
            lines = self._header_fields(r.header)
            for e in r.events:
                lines.append(f'"Type" : {e.type.value}')
                if e.prev_kv is not None:
                    lines += self._kv_fields(e.prev_kv, "Prev")
                lines += self._kv_fields(e.kv)
            self._lines(lines)
        else:
            out = b""
            for e in r.events:
                out += e.type.value.encode() + b"\n"
                if e.prev_kv is not None:
                    out += self._kv_simple(e.prev_kv)
                out += self._kv_simple(e.kv)
            emit(out)

    # -- leases ------------------------------------------------------------------------------------------

    def lease_grant(self, g: LeaseGrant) -> None:
        self.require("simple", "json", "fields")
        if self.fmt == "json":
            self._lines([to_json({**header_json(g.header), "ID": g.id, "TTL": g.ttl, "Error": ""})])
        elif self.fmt == "fields":
            self._lines([*self._header_fields(g.header), f'"ID" : {g.id}', f'"TTL" : {g.ttl}'])
        else:
            self._lines([f"lease {g.id:016x} granted with TTL({g.ttl}s)"])

    def lease_revoke(self, lease_id: int, header: Header) -> None:
        self.require("simple", "json", "fields")
        if self.fmt == "json":
            self._lines([to_json({"header": header_json(header)})])
        elif self.fmt == "fields":
            self._lines(self._header_fields(header))
        else:
            self._lines([f"lease {lease_id:016x} revoked"])

    def lease_time_to_live(self, info: LeaseInfo, keys: bool) -> None:
        self.require("simple", "json", "fields")
        if self.fmt == "json":
            listed = [encode(k) for k in info.keys] if info.keys else None
            self._lines(
                [
                    to_json(
                        {
                            **header_json(info.header),
                            "id": info.id,
                            "ttl": info.ttl,
                            "granted-ttl": info.granted_ttl,
                            "keys": listed,
                        }
                    )
                ]
            )
        elif self.fmt == "fields":
            lines = [
                *self._header_fields(info.header),
                f'"ID" : {info.id}',
                f'"TTL" : {info.ttl}',
                f'"GrantedTTL" : {info.granted_ttl}',
            ]
            self._lines(lines + [f'"Key" : {go_quote(k)}' for k in info.keys])
        elif info.ttl == -1:
            self._lines([f"lease {info.id:016x} already expired"])
        else:
            text = f"lease {info.id:016x} granted with TTL({info.granted_ttl}s), remaining({info.ttl}s)"
            if keys:
                text += ", attached keys([" + " ".join(k.decode(errors="replace") for k in info.keys) + "])"
            self._lines([text])

    def lease_keep_alive(self, g: LeaseGrant) -> None:
        self.require("simple", "json", "fields")
        if self.fmt == "json":
            self._lines([to_json({**header_json(g.header), "ID": g.id, "TTL": g.ttl})])
        elif self.fmt == "fields":
            self._lines([*self._header_fields(g.header), f'"ID" : {g.id}', f'"TTL" : {g.ttl}'])
        else:
            self._lines([f"lease {g.id:016x} keepalived with TTL({g.ttl})"])

    def lease_list(self, listing: LeaseListing) -> None:
        self.require("simple", "json", "fields")
        if self.fmt == "json":
            leases = [{"id": lease_id} for lease_id in listing.ids]
            self._lines([to_json({**header_json(listing.header), "leases": leases})])
        elif self.fmt == "fields":
            self._lines(self._header_fields(listing.header) + [f'"ID" : {lease_id}' for lease_id in listing.ids])
        else:
            self._lines([f"found {len(listing.ids)} leases", *(f"{lease_id:016x}" for lease_id in listing.ids)])

    # -- cluster -----------------------------------------------------------------------------------------

    def member_list(self, change: MemberChange) -> None:
        self.require("simple", "json", "fields", "table")
        rows = [
            [
                f"{m.id:x}",
                "started" if m.name else "unstarted",
                m.name,
                ",".join(m.peer_urls),
                ",".join(m.client_urls),
                _go_bool(m.is_learner),
            ]
            for m in change.members
        ]
        if self.fmt == "json":
            members = [member_json(m) for m in change.members]
            self._lines([to_json({"header": header_json(change.header), "members": members})])
        elif self.fmt == "fields":
            lines = self._header_fields(change.header)
            for m in change.members:
                lines += [f'"ID" : {m.id}', f'"Name" : {go_quote(m.name)}']
                lines += [f'"PeerURL" : {go_quote(u)}' for u in m.peer_urls]
                lines += [f'"ClientURL" : {go_quote(u)}' for u in m.client_urls]
                lines += [f'"IsLearner" : {_go_bool(m.is_learner)}', ""]
            self._lines(lines)
        elif self.fmt == "table":
            emit(table(["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"], rows))
        else:
            self._lines([", ".join(row) for row in rows])

    def member_add(self, change: MemberChange, name: str, peer_urls: Sequence[str]) -> None:
        self.require("simple", "json")
        if self.fmt == "json":
            added = member_json(change.added) if change.added else {}
            members = [member_json(m) for m in change.members]
            self._lines([to_json({"header": header_json(change.header), "member": added, "members": members})])
            return
        new_id = change.added.id if change.added else 0
        cluster = [f"{name if m.id == new_id else m.name}={url}" for m in change.members for url in m.peer_urls]
        self._lines(
            [
                f"Member {new_id:16x} added to cluster {change.header.cluster_id:16x}",
                "",
                f'ETCD_NAME="{name}"',
                f'ETCD_INITIAL_CLUSTER="{",".join(cluster)}"',
                f'ETCD_INITIAL_ADVERTISE_PEER_URLS="{",".join(peer_urls)}"',
                'ETCD_INITIAL_CLUSTER_STATE="existing"',
            ]
        )

    def member_changed(self, change: MemberChange, member_id: int, what: str) -> None:
        """The answer to `member remove/update/promote` (`what` is `removed from`, `updated in`, ...)."""
        self.require("simple", "json")
        if self.fmt == "json":
            members = [member_json(m) for m in change.members]
            self._lines([to_json({"header": header_json(change.header), "members": members})])
        else:
            self._lines([f"Member {member_id:16x} {what} cluster {change.header.cluster_id:16x}"])

    def endpoint_status(self, statuses: Sequence[EndpointStatus]) -> None:
        self.require("simple", "json", "fields", "table")
        rows = [
            [
                e.endpoint,
                f"{s.header.member_id:x}",
                s.version,
                human_bytes(s.db_size),
                _go_bool(s.is_leader),
                _go_bool(s.is_learner),
                str(s.raft_term),
                str(s.raft_index),
                str(s.raft_applied_index),
                ", ".join(s.errors),
            ]
            for e in statuses
            for s in [e.status]
        ]
        if self.fmt == "json":
            self._lines([to_json([{"Endpoint": e.endpoint, "Status": status_json(e.status)} for e in statuses])])
        elif self.fmt == "fields":
            lines: list[str] = []
            for e in statuses:
                s = e.status
                lines += self._header_fields(s.header)
                lines += [
                    f'"Version" : {go_quote(s.version)}',
                    f'"DBSize" : {s.db_size}',
                    f'"Leader" : {s.leader}',
                    f'"IsLearner" : {_go_bool(s.is_learner)}',
                    f'"RaftIndex" : {s.raft_index}',
                    f'"RaftTerm" : {s.raft_term}',
                    f'"RaftAppliedIndex" : {s.raft_applied_index}',
                    f'"Errors" : [{" ".join(s.errors)}]',
                    f'"Endpoint" : {go_quote(e.endpoint)}',
                    "",
                ]
            self._lines(lines)
        elif self.fmt == "table":
            header = [
                "ENDPOINT",
                "ID",
                "VERSION",
                "DB SIZE",
                "IS LEADER",
                "IS LEARNER",
                "RAFT TERM",
                "RAFT INDEX",
                "RAFT APPLIED INDEX",
                "ERRORS",
            ]
            emit(table(header, rows))
        else:
            self._lines([", ".join(row) for row in rows])

    def endpoint_health(self, results: Sequence[EndpointHealth]) -> None:
        self.require("simple", "json", "fields", "table")
        if self.fmt == "json":
            items: list[Json] = []
            for h in results:
                item: Json = {"endpoint": h.endpoint, "health": h.health, "took": go_duration(h.took)}
                items.append(item | {"error": h.error} if h.error else item)
            self._lines([to_json(items)])
        elif self.fmt == "fields":
            lines: list[str] = []
            for h in results:
                lines += [
                    f'"Endpoint" : {go_quote(h.endpoint)}',
                    f'"Health" : {_go_bool(h.health)}',
                    f'"Took" : {go_duration(h.took)}',
                    f'"Error" : {h.error}',
                    "",
                ]
            self._lines(lines)
        elif self.fmt == "table":
            rows = [[h.endpoint, _go_bool(h.health), go_duration(h.took), h.error] for h in results]
            emit(table(["ENDPOINT", "HEALTH", "TOOK", "ERROR"], rows))
        else:  # etcdctl writes these lines on stderr
            for h in results:
                if h.health:
                    warn(f"{h.endpoint} is healthy: successfully committed proposal: took = {go_duration(h.took)}")
                else:
                    warn(f"{h.endpoint} is unhealthy: failed to commit proposal: {h.error}")

    def move_leader(self, leader_id: int, target_id: int) -> None:
        if self.fmt == "json":
            self._lines(["{}"])
        else:
            self._lines([f"Leadership transferred from {leader_id:x} to {target_id:x}"])


def _go_bool(value: bool) -> str:
    return "true" if value else "false"
