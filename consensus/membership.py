"""Who is in the cluster: member ids, names and URLs, built from the log's membership changes.

Raft decides who votes; this registry keeps what each member is called and where it listens. Every
change reaches it as a committed conf change whose context holds the member's fields as JSON (after a
request id, so the proposer can be woken), so every member derives the same registry from the log, and
a snapshot carries the registry as of its index.

A member's id is derived from its peer URLs and the cluster token (as etcd derives the founding
members' ids), so a member started with ``--initial-cluster-state existing`` knows its own id without
asking, and a member added with the same URLs gets that same id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace

import orjson
from corral.consensus.log import (
    LearnerNotReady,
    MemberExists,
    MemberNotFound,
    NotEnoughStartedMembers,
    NotLearner,
    PeerURLExists,
    TooManyLearners,
)
from corral.consensus.raft import ConfChange, ConfChangeType

REQUEST_ID_BYTES = 16
NO_REQUEST = bytes(REQUEST_ID_BYTES)  # bootstrap changes: nobody waits for them


def derive_id(*parts: str) -> int:
    """A stable nonzero uint64 from `parts` (member and cluster ids, as etcd derives them)."""
    digest = hashlib.sha1("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def member_id(peer_urls: Iterable[str], cluster_token: str) -> int:
    return derive_id(*sorted(peer_urls), cluster_token)


def cluster_id(member_ids: Iterable[int], cluster_token: str) -> int:
    return derive_id(*(str(i) for i in sorted(member_ids)), cluster_token)


@dataclass(frozen=True, slots=True)
class Member:
    """One member as etcd's member API shows it. A member added but not yet started has no name and no
    client URLs: it publishes them once it runs."""

    id: int
    name: str = ""
    peer_urls: tuple[str, ...] = ()
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "peerURLs": list(self.peer_urls),
            "clientURLs": list(self.client_urls),
            "isLearner": self.is_learner,
        }

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> Member:
        return cls(
            id=int(doc["id"]),  # type: ignore[call-overload]
            name=str(doc.get("name", "")),
            peer_urls=tuple(doc.get("peerURLs", ())),  # type: ignore[arg-type]
            client_urls=tuple(doc.get("clientURLs", ())),  # type: ignore[arg-type]
            is_learner=bool(doc.get("isLearner", False)),
        )


def encode_context(request_id: bytes, cluster: int = 0, **fields: object) -> bytes:
    """The context of a conf change: the proposer's request id, then the member's fields (peerURLs,
    name, clientURLs) as JSON. Founding members' changes also carry the cluster id."""
    if cluster:
        fields["clusterID"] = cluster
    return request_id + orjson.dumps(fields)


def decode_context(context: bytes) -> tuple[bytes, dict[str, object]]:
    """(request id, fields); a malformed context has no fields."""
    request_id, body = context[:REQUEST_ID_BYTES], context[REQUEST_ID_BYTES:]
    try:
        fields = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return request_id, {}
    return request_id, fields if isinstance(fields, dict) else {}


class Membership:
    """The registry of members, changed only by applying committed conf changes (or a snapshot)."""

    def __init__(self, members: Iterable[Member] = (), removed: Iterable[int] = (), cluster: int = 0) -> None:
        self.members: dict[int, Member] = {m.id: m for m in members}
        self.removed: set[int] = set(removed)
        self.cluster_id = cluster

    def apply(self, change: ConfChange, fields: dict[str, object]) -> None:
        """Record a committed change; the Raft core has already decided who votes."""
        node = change.node_id
        if change.type is ConfChangeType.REMOVE_NODE:
            self.members.pop(node, None)
            self.removed.add(node)
            return
        if node in self.removed:
            return  # a removed id never comes back (etcd refuses it too)
        cluster = fields.get("clusterID")
        if isinstance(cluster, int) and not self.cluster_id:
            self.cluster_id = cluster
        member = self.members.get(node, Member(node))
        updates: dict[str, object] = {}
        if isinstance(name := fields.get("name"), str):
            updates["name"] = name
        for key, attr in (("peerURLs", "peer_urls"), ("clientURLs", "client_urls")):
            urls = fields.get(key)
            if isinstance(urls, list) and all(isinstance(url, str) for url in urls):
                updates[attr] = tuple(urls)
        if change.type is ConfChangeType.ADD_VOTER:
            updates["is_learner"] = False
        elif change.type is ConfChangeType.ADD_LEARNER:
            updates["is_learner"] = True
        self.members[node] = replace(member, **updates)  # type: ignore[arg-type]

    def peer_urls(self) -> dict[int, str]:
        """Each member's first peer URL: where the transport reaches it."""
        return {m.id: m.peer_urls[0] for m in self.members.values() if m.peer_urls}

    def sorted_members(self) -> list[Member]:
        return sorted(self.members.values(), key=lambda m: m.id)

    def holder_of(self, peer_urls: Iterable[str], excluding: int = 0) -> Member | None:
        """The member (other than `excluding`) that already uses one of `peer_urls`."""
        wanted = set(peer_urls)
        for member in self.members.values():
            if member.id != excluding and wanted.intersection(member.peer_urls):
                return member
        return None

    def copy(self) -> Membership:
        return Membership(self.members.values(), self.removed, self.cluster_id)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "clusterID": self.cluster_id,
                "members": [m.to_json() for m in self.sorted_members()],
                "removed": sorted(self.removed),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Membership:
        doc = orjson.loads(data)
        return cls((Member.from_json(m) for m in doc["members"]), doc.get("removed", ()), doc.get("clusterID", 0))


# -- checks before a change is proposed (etcd's strict reconfiguration checks) ----------------------

MAX_LEARNERS = 1  # etcd 3.4's limit
LEARNER_READY_FRACTION = 0.9  # a learner may vote once its log holds 90% of the leader's


def check_add(
    membership: Membership, new_id: int, peer_urls: tuple[str, ...], is_learner: bool, connected: set[int]
) -> None:
    """Raise if adding `new_id` now is unsafe or clashes. `connected` holds the voters this member can
    reach (itself included)."""
    if membership.holder_of(peer_urls) is not None:
        raise PeerURLExists("peer URLs already exist")
    if new_id in membership.members or new_id in membership.removed:
        raise MemberExists("member ID already exists")
    if is_learner:
        if sum(m.is_learner for m in membership.members.values()) >= MAX_LEARNERS:
            raise TooManyLearners("too many learner members in cluster")
        return
    _check_voter_added(membership, connected)


def check_promote(
    membership: Membership, node: int, learner_match: int, leader_match: int, connected: set[int]
) -> None:
    member = membership.members.get(node)
    if member is None:
        raise MemberNotFound("member not found")
    if not member.is_learner:
        raise NotLearner("only a learner can be promoted")
    if learner_match < leader_match * LEARNER_READY_FRACTION:
        raise LearnerNotReady("learner is not in sync with the leader")
    _check_voter_added(membership, connected)


def check_remove(membership: Membership, node: int, connected: set[int]) -> None:
    """Removing a voter must leave a quorum of the remaining voters running and reachable."""
    member = membership.members.get(node)
    if member is None:
        raise MemberNotFound("member not found")
    if member.is_learner:
        return
    remaining = [m for m in _voters(membership) if m.id != node]
    if node not in connected:
        return  # a member that is down is safe to remove: it is not part of the working quorum
    if sum(m.id in connected for m in remaining) < len(remaining) // 2 + 1:
        raise NotEnoughStartedMembers("not enough started members")


def _check_voter_added(membership: Membership, connected: set[int]) -> None:
    voters = _voters(membership)
    started = sum(bool(m.name) for m in voters)
    if started == 1 and len(voters) == 1:
        return  # growing a one-member cluster (as etcd allows)
    if started < (len(voters) + 1) // 2 + 1 or any(m.id not in connected for m in voters):
        raise NotEnoughStartedMembers("not enough started members")


def _voters(membership: Membership) -> list[Member]:
    return [m for m in membership.members.values() if not m.is_learner]


def bootstrap_changes(members: list[Member], cluster: int) -> list[ConfChange]:
    """The founding members' changes, the first entries of a new cluster's log (as etcd bootstraps):
    a member that joins later replays them like any other entry and so learns who founded it."""
    return [
        ConfChange(
            ConfChangeType.ADD_VOTER,
            m.id,
            encode_context(NO_REQUEST, cluster, name=m.name, peerURLs=list(m.peer_urls)),
        )
        for m in sorted(members, key=lambda m: m.id)
    ]
