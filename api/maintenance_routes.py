"""etcd's maintenance service: `/v3/maintenance/status`, `transfer-leadership` (etcd's MoveLeader) and
the `snapshot` stream.

The snapshot is of this member's state machine (keys with their retained history, and the lease table)
at one applied index: captured at once on the event loop, serialized on a worker thread while writes go
on, then streamed as etcd streams its database file (see `snapshot_file` for the bytes and their use).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

from corral.store.errors import EtcdError
from corral.store.state_machine import KVSnapshot
from starlette.types import Receive, Scope, Send

from . import codec, streams
from .errors import MessageTooLarge, error_response
from .gateway import BodyTooLarge, UnaryHandler, read_body, send_json
from .server import ETCD_API_VERSION, GRPC_OVERHEAD_BYTES, CorralServer
from .snapshot_file import CHUNK_BYTES


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

    async def snapshot(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`POST /v3/maintenance/snapshot`: `{"result": {"remaining_bytes", "blob"}}` lines of at most
        32 KiB of snapshot each, `remaining_bytes` counting what is still to come after the line (left
        out when 0), then one last line whose blob is the SHA-256 of all the bytes before it, as etcd's
        v3rpc `maintenanceServer.Snapshot` sends them (no header in any message)."""
        limit = self._server.config.max_request_bytes + GRPC_OVERHEAD_BYTES
        try:
            codec.load_body(await read_body(receive, limit), "etcdserverpb.SnapshotRequest")
        except BodyTooLarge as exc:
            await send_json(send, *error_response(MessageTooLarge(exc.size, limit)))
            return
        except EtcdError as error:
            await send_json(send, *error_response(error))
            return
        gone = asyncio.ensure_future(streams.wait_for_disconnect(receive))
        try:
            data, digest = await _serialize(self._server.state.snapshot())
            response = streams.ResponseStream(send)
            size, view = len(data), memoryview(data)
            for start in range(0, size, CHUNK_BYTES):
                if gone.done():
                    return  # the client went away: nobody reads the rest
                blob = view[start : start + CHUNK_BYTES]
                remaining = size - start - len(blob)
                message = {"remaining_bytes": str(remaining)} if remaining else {}
                message["blob"] = base64.b64encode(blob).decode()
                await response.write(message)
            await response.write({"blob": base64.b64encode(digest).decode()})
            await response.finish()
        finally:
            gone.cancel()


async def _serialize(source: KVSnapshot) -> tuple[bytes, bytes]:
    """The snapshot's bytes and their SHA-256, made on a worker thread. The view is released on the event
    loop (the apply side) once the thread is done with it, also when the caller is cancelled first."""
    work = asyncio.get_running_loop().run_in_executor(None, _bytes_and_digest, source)

    def done(future: asyncio.Future[tuple[bytes, bytes]]) -> None:
        source.release()
        if not future.cancelled():
            future.exception()  # retrieved here too, in case the caller is no longer waiting for it

    work.add_done_callback(done)
    return await asyncio.shield(work)


def _bytes_and_digest(source: KVSnapshot) -> tuple[bytes, bytes]:
    data = source.serialize()
    return data, hashlib.sha256(data).digest()
