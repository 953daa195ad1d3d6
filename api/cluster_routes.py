"""etcd's cluster service: `/v3/cluster/member/{list,add,remove,update,promote}`.

Members, their names and URLs come from the log (see `corral.consensus.membership`), so every member
answers alike. Promotion needs the leader's view of the learner's progress: a follower forwards it to
the leader's client URL, as etcd forwards it over its peer API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from corral.consensus.log import NotLeader
from corral.consensus.membership import Member
from corral.store.errors import EtcdError, GrpcCode

from . import codec
from .forward import forward_to_leader
from .gateway import UnaryHandler
from .server import CorralServer

_PEER_URL_SCHEMES = ("http", "https")  # etcd also takes unix sockets; Corral's peer transport is TCP only


class BadMemberURLs(EtcdError):
    code = GrpcCode.INVALID_ARGUMENT
    message = "etcdserver: given member URLs are invalid"


class ClusterRoutes:
    def __init__(self, server: CorralServer) -> None:
        self._server = server

    def routes(self) -> dict[str, UnaryHandler]:
        return {
            "/v3/cluster/member/list": self.member_list,
            "/v3/cluster/member/add": self.member_add,
            "/v3/cluster/member/remove": self.member_remove,
            "/v3/cluster/member/update": self.member_update,
            "/v3/cluster/member/promote": self.member_promote,
        }

    async def member_list(self, body: bytes) -> bytes:
        codec.load_body(body, "etcdserverpb.MemberListRequest")
        return self._reply()

    async def member_add(self, body: bytes) -> bytes:
        fields = codec.load_body(body, "etcdserverpb.MemberAddRequest")
        peer_urls = _peer_urls(fields.get("peerURLs"))
        added = await self._server.log.add_member(peer_urls, codec.to_bool(fields.get("isLearner")))
        return self._reply(member=_member_json(added))

    async def member_remove(self, body: bytes) -> bytes:
        fields = codec.load_body(body, "etcdserverpb.MemberRemoveRequest")
        await self._server.log.remove_member(codec.to_int(fields.get("ID"), "uint64"))
        return self._reply()

    async def member_update(self, body: bytes) -> bytes:
        fields = codec.load_body(body, "etcdserverpb.MemberUpdateRequest")
        member_id = codec.to_int(fields.get("ID"), "uint64")
        await self._server.log.update_member(member_id, _peer_urls(fields.get("peerURLs")))
        return self._reply()

    async def member_promote(self, body: bytes) -> bytes:
        fields = codec.load_body(body, "etcdserverpb.MemberPromoteRequest")
        try:
            await self._server.log.promote_member(codec.to_int(fields.get("ID"), "uint64"))
        except NotLeader:
            return await forward_to_leader(self._server, "/v3/cluster/member/promote", body)
        return self._reply()

    def _reply(self, **extra: Any) -> bytes:
        header = self._server.header(0)
        del header["revision"]  # cluster responses carry no revision
        members = [_member_json(m) for m in self._server.log.members()]
        return codec.dumps({"header": header, **extra, "members": members})



def _member_json(member: Member) -> dict[str, Any]:
    """etcd's Member message; proto3 JSON leaves out empty fields and a false isLearner."""
    out: dict[str, Any] = {"ID": str(member.id)}
    if member.name:
        out["name"] = member.name
    if member.peer_urls:
        out["peerURLs"] = list(member.peer_urls)
    if member.client_urls:
        out["clientURLs"] = list(member.client_urls)
    if member.is_learner:
        out["isLearner"] = True
    return out


def _peer_urls(value: object) -> tuple[str, ...]:
    """Peer URLs as etcd accepts them: at least one, each scheme://host:port with no path."""
    if value is not None and not isinstance(value, list):
        raise codec.DecodeError(f"json: cannot unmarshal {codec.go_kind(value)} into Go value of type []string")
    urls = value or []
    for url in urls:
        if not isinstance(url, str):
            raise codec.DecodeError(f"json: cannot unmarshal {codec.go_kind(url)} into Go value of type string")
    urls = [url.strip() for url in urls]
    if not urls or not all(_valid_peer_url(url) for url in urls):
        raise BadMemberURLs()
    return tuple(urls)


def _valid_peer_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in _PEER_URL_SCHEMES or parts.path or parts.query or parts.fragment:
        return False
    try:
        return bool(parts.hostname) and parts.port is not None
    except ValueError:
        return False
