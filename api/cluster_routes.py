"""etcd's cluster service: `/v3/cluster/member/list`.

Members are those of the initial cluster. What etcd learns from each member once it starts (its name and
client URLs, published through the log) is known here only for this member so far.
"""

from __future__ import annotations

from . import codec
from .gateway import UnaryHandler
from .server import CorralServer


class ClusterRoutes:
    def __init__(self, server: CorralServer) -> None:
        self._server = server

    def routes(self) -> dict[str, UnaryHandler]:
        return {"/v3/cluster/member/list": self.member_list}

    async def member_list(self, body: bytes) -> bytes:
        codec.load_body(body, "etcdserverpb.MemberListRequest")
        server = self._server
        header = server.header(0)
        del header["revision"]  # cluster responses carry no revision
        members = []
        for name, peer_urls in server.config.cluster().items():
            member_id = server.member_ids.get(name, server.member_id)
            member: dict[str, object] = {"ID": str(member_id), "name": name, "peerURLs": list(peer_urls)}
            if member_id == server.member_id:
                member["clientURLs"] = list(server.config.advertise_client_urls)
            members.append(member)
        return codec.dumps({"header": header, "members": members})
