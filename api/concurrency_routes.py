"""etcd's election and lock services: `/v3/election/{campaign,proclaim,leader,resign,observe}` and
`/v3/lock/{lock,unlock}`, built as etcd builds them, on KV transactions, leases and watches.

A candidate (or a lock waiter) is the key `<name>/<lease id in hex>`, attached to its lease; candidates
queue by create revision, and the oldest leads (or holds the lock). Waiting for the candidates ahead to
go is a watch on the next older key until it is deleted. Writes go through the log like any other;
reads follow the log's read barrier. A campaign or lock whose client goes away while it waits deletes its
key, as etcd's does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from corral.consensus.log import LogError
from corral.store import commands, kv
from corral.store.errors import EtcdError, GrpcCode, KeyNotProvided, RequestTooLarge
from corral.store.types import (
    Compare,
    CompareTarget,
    DeleteRangeRequest,
    EventType,
    KeyValue,
    LeaseGrantRequest,
    LeaseGrantResponse,
    PutRequest,
    RangeRequest,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from corral.watch.hub import WatchHub, WatchSpec
from starlette.types import Receive, Scope, Send

from . import codec, streams
from .errors import MessageTooLarge, error_response, from_log_error
from .gateway import BodyTooLarge, read_body, send_json
from .lease_routes import new_lease_id
from .server import GRPC_OVERHEAD_BYTES, CorralServer

SESSION_TTL = 60  # the lease etcd's gateway grants (and never renews) when a request names none


class ConcurrencyError(EtcdError):
    """etcd's election/lock errors reach gateway clients with code 2 (they pass through a Go client).
    Corral keeps the code and text but answers HTTP 400, not etcd's 500: they are not server faults."""

    code = GrpcCode.UNKNOWN
    http_status = 400


def _error(message: str) -> ConcurrencyError:
    return ConcurrencyError(message)


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ConcurrencyRoutes:
    def __init__(self, server: CorralServer, hub: WatchHub) -> None:
        self._server = server
        self._hub = hub

    def streams(self) -> dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]]:
        """Every route needs the client's disconnect (a waiter that leaves gives up its place), so all
        are served as raw ASGI handlers."""
        unary: dict[str, tuple[str, Handler]] = {
            "/v3/election/campaign": ("v3electionpb.CampaignRequest", self.campaign),
            "/v3/election/proclaim": ("v3electionpb.ProclaimRequest", self.proclaim),
            "/v3/election/leader": ("v3electionpb.LeaderRequest", self.leader),
            "/v3/election/resign": ("v3electionpb.ResignRequest", self.resign),
            "/v3/lock/lock": ("v3lockpb.LockRequest", self.lock),
            "/v3/lock/unlock": ("v3lockpb.UnlockRequest", self.unlock),
        }
        routes: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            path: self._unary(message, handler) for path, (message, handler) in unary.items()
        }
        routes["/v3/election/observe"] = self.observe
        return routes

    def _unary(self, message: str, handler: Handler) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                fields = codec.load_body(await self._read(receive), message)
                answer = await _until_disconnect(receive, handler(fields))
            except EtcdError as error:
                status, body = error_response(error)
            except LogError as error:
                status, body = error_response(from_log_error(error))
            else:
                if answer is None:
                    return  # the client went away
                status, body = 200, codec.dumps(answer)
            await send_json(send, status, body)

        return serve

    # -- election ----------------------------------------------------------------------------------

    async def campaign(self, fields: dict[str, Any]) -> dict[str, Any]:
        name = codec.b64decode(fields.get("name"))
        value = codec.b64decode(fields.get("value"))
        if len(name) + len(value) + 64 > self._server.config.max_request_bytes:
            raise RequestTooLarge()  # the put it becomes would be refused as too large
        lease = await self._session(codec.to_int(fields.get("lease")))
        key = _candidate_key(name, lease)
        created = await self._txn(
            TxnRequest(
                compare=(_created_at(key, 0),),
                success=(PutRequest(key, value, lease),),
                failure=(RangeRequest(key),),
            )
        )
        revision = created.revision
        if not created.succeeded:
            existing = created.responses[0].kvs[0]  # type: ignore[union-attr]
            revision = existing.create_revision
            if existing.value != value:
                await self._proclaim(key, revision, lease, value)
        header = self._server.header(created.revision)
        async with _given_up_on_leaving(self, key):
            await self._wait_for_older(name, revision)
        leader = {"key": codec.b64encode(key), "rev": str(revision), "lease": str(lease)}
        if name:  # proto3 JSON leaves an empty name out
            leader = {"name": codec.b64encode(name), **leader}
        return {"header": header, "leader": leader}

    async def proclaim(self, fields: dict[str, Any]) -> dict[str, Any]:
        key, revision, lease = _leader_key(fields)
        response = await self._proclaim(key, revision, lease, codec.b64decode(fields.get("value")))
        return {"header": self._server.header(response.revision)}

    async def _proclaim(self, key: bytes, revision: int, lease: int, value: bytes) -> TxnResponse:
        response = await self._txn(
            TxnRequest(
                compare=(_created_at(key, revision),),
                success=(PutRequest(key, value, lease),),
            )
        )
        if not response.succeeded:
            raise _error("election: not leader")
        return response

    async def resign(self, fields: dict[str, Any]) -> dict[str, Any]:
        key, revision, _ = _leader_key(fields)
        response = await self._txn(
            TxnRequest(compare=(_created_at(key, revision),), success=(DeleteRangeRequest(key),))
        )
        return {"header": self._server.header(response.revision)}

    async def leader(self, fields: dict[str, Any]) -> dict[str, Any]:
        name = codec.b64decode(fields.get("name"))
        await self._server.log.read_barrier()
        oldest = self._oldest(name)
        if oldest is None:
            raise _error("election: no leader")
        return {"header": self._header(), "kv": codec.encode_kv(oldest)}

    async def observe(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The leader now (or the first to come), each value it proclaims, then its successor, and so on."""
        try:
            fields = codec.load_body(await self._read(receive), "v3electionpb.LeaderRequest")
            name = codec.b64decode(fields.get("name"))
            await self._server.log.read_barrier()
        except EtcdError as error:
            await send_json(send, *error_response(error))
            return
        except LogError as error:
            await send_json(send, *error_response(from_log_error(error)))
            return
        response = streams.ResponseStream(send)
        await _until_disconnect(receive, self._observe(name, response))

    async def _observe(self, name: bytes, response: streams.ResponseStream) -> None:
        prefix = _prefix(name)
        while True:
            leader = self._oldest(name)
            if leader is None:  # wait for the first candidate
                watcher = self._hub.watch(
                    WatchSpec(prefix, kv.prefix_end(prefix), self._hub.store.revision + 1, no_delete=True)
                )
                try:
                    batch = await watcher.next()
                finally:
                    watcher.close()
                leader = self._oldest(name) or batch.events[0].kv
            await response.write({"header": self._header(), "kv": codec.encode_kv(leader)})
            watcher = self._hub.watch(WatchSpec(leader.key, start_revision=leader.mod_revision + 1))
            try:
                while True:
                    batch = await watcher.next()
                    gone = [e for e in batch.events if e.type is EventType.DELETE]
                    for event in batch.events:
                        if event.type is EventType.PUT:
                            header = self._server.header(event.kv.mod_revision)
                            await response.write({"header": header, "kv": codec.encode_kv(event.kv)})
                    if gone:
                        break
            finally:
                watcher.close()

    # -- lock --------------------------------------------------------------------------------------

    async def lock(self, fields: dict[str, Any]) -> dict[str, Any]:
        name = codec.b64decode(fields.get("name"))
        lease = await self._session(codec.to_int(fields.get("lease")))
        key = _candidate_key(name, lease)
        prefix = _prefix(name)
        oldest = _oldest_under(prefix)
        response = await self._txn(
            TxnRequest(
                compare=(_created_at(key, 0),),
                success=(PutRequest(key, b"", lease), oldest),
                failure=(RangeRequest(key), oldest),
            )
        )
        mine = response.revision if response.succeeded else response.responses[0].kvs[0].create_revision  # type: ignore[union-attr]
        first = response.responses[1].kvs  # type: ignore[union-attr]
        if first and first[0].create_revision == mine:
            return {"header": self._server.header(response.revision), "key": codec.b64encode(key)}
        async with _given_up_on_leaving(self, key):
            await self._wait_for_older(name, mine)
        return {"header": self._header(), "key": codec.b64encode(key)}

    async def unlock(self, fields: dict[str, Any]) -> dict[str, Any]:
        key = codec.b64decode(fields.get("key"))
        if not key:
            raise KeyNotProvided()
        result = await self._propose(DeleteRangeRequest(key))
        return {"header": self._server.header(result.revision)}  # type: ignore[union-attr]

    # -- shared ------------------------------------------------------------------------------------

    async def _read(self, receive: Receive) -> bytes:
        """The request body, within the gateway's limits (429 past the gRPC receive limit)."""
        limit = self._server.config.max_request_bytes + GRPC_OVERHEAD_BYTES
        try:
            body = await read_body(receive, 3 * limit)
        except BodyTooLarge as exc:
            raise MessageTooLarge(exc.size, limit) from None
        if len(body) > limit:
            raise MessageTooLarge(len(body), limit)
        return body

    async def _session(self, lease: int) -> int:
        """The caller's lease, or a fresh 60 s one that nobody keeps alive (etcd's gateway does this)."""
        if lease:
            if not self._server.state.leases.exists(lease):
                await self._server.log.read_barrier()
                if not self._server.state.leases.exists(lease):
                    raise _error("etcdserver: requested lease not found")
            return lease
        lease = new_lease_id(self._server)
        granted = await self._propose(LeaseGrantRequest(lease, SESSION_TTL))
        assert isinstance(granted, LeaseGrantResponse)
        return granted.id

    async def _wait_for_older(self, name: bytes, revision: int) -> None:
        """Until no key under `name/` is older than `revision` (etcd's waitDeletes)."""
        prefix = _prefix(name)
        while True:
            older = kv.range_(
                self._hub.store,
                RangeRequest(prefix, kv.prefix_end(prefix), limit=1, sort_order=SortOrder.DESCEND,
                             sort_target=SortTarget.CREATE, max_create_revision=revision - 1),
            )  # fmt: skip
            if not older.kvs:
                return
            ahead = older.kvs[0]
            watcher = self._hub.watch(WatchSpec(ahead.key, start_revision=older.revision + 1, no_put=True))
            try:
                await watcher.next()
            finally:
                watcher.close()

    def _oldest(self, name: bytes) -> KeyValue | None:
        found = kv.range_(self._hub.store, _oldest_under(_prefix(name)))
        return found.kvs[0] if found.kvs else None

    async def _txn(self, request: TxnRequest) -> TxnResponse:
        result = await self._propose(request)
        assert isinstance(result, TxnResponse)
        return result

    async def _propose(self, command: commands.Command) -> object:
        result = await self._server.log.propose(commands.encode(command), command)
        if isinstance(result, EtcdError):
            if result.code is GrpcCode.NOT_FOUND:  # a lease that went away meanwhile
                raise _error(result.message)
            raise result
        return result

    def _header(self) -> dict[str, Any]:
        return self._server.header(self._hub.store.revision)

    async def delete(self, key: bytes) -> None:
        with contextlib.suppress(Exception):
            await self._propose(DeleteRangeRequest(key))


@contextlib.asynccontextmanager
async def _given_up_on_leaving(routes: ConcurrencyRoutes, key: bytes) -> Any:
    """If the waiting is cancelled (the client went away), the key is deleted: the place is given up."""
    try:
        yield
    except asyncio.CancelledError:
        asyncio.get_running_loop().create_task(routes.delete(key))
        raise


async def _until_disconnect(receive: Receive, work: Awaitable[Any]) -> Any:
    """`work`'s result, or None (with `work` cancelled) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(streams.wait_for_disconnect(receive))
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None


def _leader_key(fields: dict[str, Any]) -> tuple[bytes, int, int]:
    leader = fields.get("leader")
    if leader is None:
        raise _error('"leader" field must be provided')
    leader = codec.object_(leader, "v3electionpb.LeaderKey")
    key = codec.b64decode(leader.get("key"))
    if not key:
        raise KeyNotProvided()
    return key, codec.to_int(leader.get("rev")), codec.to_int(leader.get("lease"))


def _created_at(key: bytes, revision: int) -> Compare:
    """The compare "key was created at `revision`" (0: the key does not exist)."""
    return Compare(key, CompareTarget.CREATE, operand=revision)


def _oldest_under(prefix: bytes) -> RangeRequest:
    end = kv.prefix_end(prefix)
    return RangeRequest(prefix, end, limit=1, sort_order=SortOrder.ASCEND, sort_target=SortTarget.CREATE)


def _candidate_key(name: bytes, lease: int) -> bytes:
    return _prefix(name) + format(lease, "x").encode()


def _prefix(name: bytes) -> bytes:
    return name + b"/"
