"""etcd's KV service: `/v3/kv/range`, `put`, `deleterange`, `txn`, `compaction`.

Writes are validated, encoded as commands and proposed to the log; their response is built from the
state machine's result once the command is durable and applied. Reads are served from the local
store after the log's read barrier (skipped for `serializable` reads, as etcd does).
"""

from __future__ import annotations

from typing import TypeVar

from corral.store import commands, kv, validation
from corral.store.errors import EtcdError, RequestTooLarge
from corral.store.types import CompactionResponse, DeleteRangeResponse, PutResponse, TxnResponse

from . import codec
from .errors import MessageTooLarge
from .gateway import UnaryHandler
from .limits import RAFT_REQUEST_OVERHEAD, proto_size
from .server import GRPC_OVERHEAD_BYTES, CorralServer

R = TypeVar("R", PutResponse, DeleteRangeResponse, TxnResponse, CompactionResponse)


class KVRoutes:
    def __init__(self, server: CorralServer) -> None:
        self._server = server
        self._log = server.log
        self._state = server.state
        self._header = server.header
        self._max_request_bytes = server.config.max_request_bytes
        self._max_txn_ops = server.config.max_txn_ops
        self._tracing = server.tracing  # None: tracing is off

    def routes(self) -> dict[str, UnaryHandler]:
        return {
            "/v3/kv/range": self.range,
            "/v3/kv/put": self.put,
            "/v3/kv/deleterange": self.delete_range,
            "/v3/kv/txn": self.txn,
            "/v3/kv/compaction": self.compaction,
        }

    async def range(self, body: bytes) -> bytes:
        request = codec.decode_range(codec.load_body(body, "etcdserverpb.RangeRequest"))
        self._check_received(request)
        validation.check_range(request)
        if not request.serializable:
            await (self._log.read_barrier() if self._tracing is None else self._tracing.read_index(self._log))
        response = kv.range_(self._state.store, request)
        return codec.dumps(codec.range_body(response, self._header(response.revision)))

    async def put(self, body: bytes) -> bytes:
        request = codec.decode_put(codec.load_body(body, "etcdserverpb.PutRequest"))
        size = self._check_received(request)
        validation.check_put(request)
        response = await self._propose(request, PutResponse, size)
        return codec.dumps(codec.put_body(response, self._header(response.revision)))

    async def delete_range(self, body: bytes) -> bytes:
        request = codec.decode_delete_range(codec.load_body(body, "etcdserverpb.DeleteRangeRequest"))
        size = self._check_received(request)
        validation.check_delete_range(request)
        response = await self._propose(request, DeleteRangeResponse, size)
        return codec.dumps(codec.delete_range_body(response, self._header(response.revision)))

    async def txn(self, body: bytes) -> bytes:
        request = codec.decode_txn(codec.load_body(body, "etcdserverpb.TxnRequest"))
        size = self._check_received(request)
        validation.check_txn(request, self._max_txn_ops)
        if kv.is_read_only(request):
            if not all(getattr(op, "serializable", False) for op in (*request.success, *request.failure)):
                await (self._log.read_barrier() if self._tracing is None else self._tracing.read_index(self._log))
            response = kv.txn(self._state.store, request, self._state.lease_exists)
        else:
            response = await self._propose(request, TxnResponse, size)
        return codec.dumps(codec.txn_body(response, self._header(response.revision)))

    async def compaction(self, body: bytes) -> bytes:
        request = codec.decode_compaction(codec.load_body(body, "etcdserverpb.CompactionRequest"))
        response = await self._propose(request, CompactionResponse, proto_size(request))
        return codec.dumps({"header": self._header(response.revision)})

    async def _propose(self, command: commands.Command, expected: type[R], size: int) -> R:
        """`size` is the command's protobuf size, as `_check_received` returned it."""
        if size + RAFT_REQUEST_OVERHEAD > self._max_request_bytes:
            raise RequestTooLarge()
        if self._tracing is None:
            result = await self._log.propose(commands.encode(command), command)
        else:
            result = await self._tracing.commit_wait(self._log, commands.encode(command), command)
        if isinstance(result, EtcdError):
            raise result
        if not isinstance(result, expected):
            raise TypeError(f"expected {expected.__name__} from apply, got {result!r}")
        return result

    def _check_received(self, request: object) -> int:
        """etcd's gRPC server refuses messages over max-request-bytes + 512 KiB before anything else.
        Returns the request's protobuf size."""
        size = proto_size(request)
        limit = self._max_request_bytes + GRPC_OVERHEAD_BYTES
        if size > limit:
            raise MessageTooLarge(size, limit)
        return size
