"""Fault injection for tests, off unless the member runs with `--experimental-fault-injection`.

`POST /corral/faults/partition {"peers": ["<member id>", ...], "direction": "both"}` drops this member's
Raft traffic to and from those members (a network partition as this member sees it); `"inbound"` drops
only what they send here and `"outbound"` only what goes to them (asymmetric partitions);
`{"peers": []}` heals it. Not part of etcd's API.
"""

from __future__ import annotations

from corral.consensus.raft_driver import RaftNode
from corral.store.errors import EtcdError, GrpcCode

from . import codec
from .gateway import UnaryHandler
from .server import CorralServer


class FaultRoutes:
    def __init__(self, server: CorralServer) -> None:
        self._server = server

    def routes(self) -> dict[str, UnaryHandler]:
        return {"/corral/faults/partition": self.partition} if self._server.config.fault_injection else {}

    async def partition(self, body: bytes) -> bytes:
        fields = codec.load_body(body, "corral.PartitionRequest")
        if not isinstance(self._server.log, RaftNode):
            raise EtcdError("corral: a single member has no peers to cut off", GrpcCode.FAILED_PRECONDITION)
        peers = {codec.to_int(peer, "uint64") for peer in fields.get("peers") or []}
        direction = fields.get("direction", "both")
        if direction not in ("both", "inbound", "outbound"):
            raise EtcdError("corral: direction must be both, inbound or outbound", GrpcCode.INVALID_ARGUMENT)
        self._server.log.isolate(peers, inbound=direction != "outbound", outbound=direction != "inbound")
        return b"{}"
