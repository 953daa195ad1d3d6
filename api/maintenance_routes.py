"""etcd's maintenance service: `/v3/maintenance/status` and `transfer-leadership` (etcd's MoveLeader)."""

from __future__ import annotations

from . import codec
from .gateway import UnaryHandler
from .server import ETCD_API_VERSION, CorralServer


class MaintenanceRoutes:
    def __init__(self, server: CorralServer) -> None:
        self._server = server

    def routes(self) -> dict[str, UnaryHandler]:
        return {
            "/v3/maintenance/status": self.status,
            "/v3/maintenance/transfer-leadership": self.transfer_leadership,
        }

    async def transfer_leadership(self, body: bytes) -> bytes:
        fields = codec.load_body(body, "etcdserverpb.MoveLeaderRequest")
        target = codec.to_int(fields.get("targetID"), "uint64")
        await self._server.log.transfer_leadership(target)
        return b"{}"  # etcd 3.4 answers with no header

    async def status(self, body: bytes) -> bytes:
        codec.load_body(body, "etcdserverpb.StatusRequest")
        server = self._server
        status = server.log.status()
        fields = {
            "version": ETCD_API_VERSION,
            "dbSize": str(status.storage_bytes),
            "leader": str(status.leader_id),
            "raftIndex": str(status.last_index),
            "raftTerm": str(status.term),
            "raftAppliedIndex": str(status.applied_index),
            "dbSizeInUse": str(status.storage_bytes),
        }
        out: dict[str, object] = {"header": server.header(server.state.store.revision)}
        out.update((name, value) for name, value in fields.items() if value != "0")
        if any(m.id == status.member_id and m.is_learner for m in server.log.members()):
            out["isLearner"] = True
        return codec.dumps(out)
