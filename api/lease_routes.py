"""etcd's lease service: `/v3/lease/{grant,revoke,keepalive,timetolive,leases}` (and `/v3/kv/lease/*`).

Grants and revokes are commands in the log, so any member takes them. Keep-alives and remaining TTLs
belong to the leader's expiry clock (`LeaseKeeper`), so a follower forwards those to the leader. The
keep-alive route takes etcd's gateway form: a body of one or more `{"ID": ...}` objects answered by one
`{"result": ...}` line each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from corral.consensus.log import LogError
from corral.store import commands
from corral.store.errors import EtcdError, LeaseTTLTooLarge
from corral.store.lease import MAX_LEASE_TTL, Lessor, minimum_ttl
from corral.store.types import LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse
from starlette.types import Receive, Scope, Send

from . import codec, streams
from .errors import error_response, from_log_error
from .forward import forward_to_leader
from .gateway import UnaryHandler, send_json
from .server import CorralServer

logger = logging.getLogger(__name__)

EXPIRY_INTERVAL = 0.1  # seconds between expiry checks on the leader
REVOKES_PER_ROUND = 500  # expired leases revoked per check, so a mass expiry never stalls other requests


class LeaseKeeper:
    """Runs the leader's `Lessor`: promoted when this member leads, it proposes a revoke for every lease
    that expires. Followers keep no deadlines."""

    def __init__(self, server: CorralServer) -> None:
        self._server = server
        self.lessor = Lessor()
        self._task: asyncio.Task[None] | None = None
        self._election_timeout = server.config.election_timeout_ms / 1000
        server.state.leases.listeners.append(self._on_change)

    def start(self) -> None:
        self._follow_leadership()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="corral-lease-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def is_primary(self) -> bool:
        self._follow_leadership()
        return self.lessor.primary

    def _on_change(self, lease_id: int, ttl: int | None) -> None:
        self._follow_leadership()
        self.lessor.on_change(lease_id, ttl, time.monotonic())

    def _follow_leadership(self) -> None:
        status = self._server.log.status()
        leading = status.leader_id == status.member_id
        if leading and not self.lessor.primary:
            # A new leader cannot know when leases were last renewed: give each its full TTL, plus an
            # election timeout for clients to find the new leader (etcd does the same).
            self.lessor.promote(self._server.state.leases.items(), time.monotonic(), self._election_timeout)
        elif not leading and self.lessor.primary:
            self.lessor.demote()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_INTERVAL)
            if not self.is_primary:
                continue
            for lease_id in self.lessor.expired(time.monotonic(), REVOKES_PER_ROUND):
                asyncio.get_running_loop().create_task(self._revoke(lease_id))

    async def _revoke(self, lease_id: int) -> None:
        command = LeaseRevokeRequest(lease_id)
        try:
            await self._server.log.propose(commands.encode(command), command)
        except LogError as exc:
            logger.info("revoking expired lease %x failed (%s); will retry", lease_id, exc)


class LeaseRoutes:
    def __init__(self, server: CorralServer, keeper: LeaseKeeper) -> None:
        self._server = server
        self._keeper = keeper
        self._min_ttl = minimum_ttl(server.config.election_timeout_ms / 1000)

    def routes(self) -> dict[str, UnaryHandler]:
        routes: dict[str, UnaryHandler] = {
            "/v3/lease/grant": self.grant,
            "/v3/lease/revoke": self.revoke,
            "/v3/lease/timetolive": self.time_to_live,
            "/v3/lease/leases": self.leases,
        }
        aliases = {"revoke", "timetolive", "leases"}  # etcd's gateway also serves these under /v3/kv/lease/
        routes.update({f"/v3/kv/lease/{name}": routes[f"/v3/lease/{name}"] for name in aliases})
        return routes

    async def grant(self, body: bytes) -> bytes:
        fields = codec.load_body(body, "etcdserverpb.LeaseGrantRequest")
        ttl = codec.to_int(fields.get("TTL"))
        lease_id = codec.to_int(fields.get("ID"))
        if ttl > MAX_LEASE_TTL:
            raise LeaseTTLTooLarge()
        command = LeaseGrantRequest(lease_id or new_lease_id(self._server), max(ttl, self._min_ttl))
        result = await self._propose(command, LeaseGrantResponse)
        return codec.dumps(
            {"header": self._server.header(result.revision), "ID": str(result.id), "TTL": str(result.ttl)}
        )

    async def revoke(self, body: bytes) -> bytes:
        fields = codec.load_body(body, "etcdserverpb.LeaseRevokeRequest")
        result = await self._propose(LeaseRevokeRequest(codec.to_int(fields.get("ID"))), LeaseRevokeResponse)
        return codec.dumps({"header": self._server.header(result.revision)})

    async def keepalive(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The keep-alive stream: `{"ID": ...}` objects answered as they arrive, for as long as the
        request body goes on (one long request can keep a lease alive); the response ends with the body.
        A follower forwards what it has received to the leader, one request per piece of the body. As
        in etcd, bad input after the first object only ends the request side: what came before it is
        answered and the response ends normally."""
        response = streams.ResponseStream(send)
        try:
            async for batch in streams.request_batches(receive, "etcdserverpb.LeaseKeepAliveRequest"):
                ids, bad = _lease_ids(batch)
                await self._answer(ids, response)
                if bad is not None:
                    raise bad
        except codec.DecodeError as error:
            if not response.started:
                await send_json(send, *error_response(error))
                return
        except (EtcdError, LogError) as exc:
            error = exc if isinstance(exc, EtcdError) else from_log_error(exc)
            if response.started:
                await response.fail(error)
            else:
                await send_json(send, *error_response(error))
            return
        await response.finish()

    async def _answer(self, ids: list[int], response: streams.ResponseStream) -> None:
        if not ids:
            return
        if self._keeper.is_primary:
            for result in await self._renew(ids):
                await response.write(result)
            return
        body = b"".join(codec.dumps({"ID": str(lease_id)}) for lease_id in ids)
        answer = await forward_to_leader(self._server, "/v3/lease/keepalive", body)
        for line in answer.splitlines():
            await response.write_line(line + b"\n")

    async def _renew(self, ids: list[int]) -> list[dict[str, Any]]:
        lessor = self._keeper.lessor
        if not all(lessor.knows(lease_id) for lease_id in ids):
            # A grant acknowledged by another member may not be applied here yet: catch up first.
            await self._server.log.read_barrier()
        results = []
        for lease_id in ids:
            ttl = lessor.renew(lease_id, time.monotonic())
            result: dict[str, Any] = {"header": self._header(), **_id_field(lease_id)}
            if ttl:
                result["TTL"] = str(ttl)
            results.append(result)
        return results

    async def time_to_live(self, body: bytes) -> bytes:
        fields = codec.load_body(body, "etcdserverpb.LeaseTimeToLiveRequest")
        lease_id = codec.to_int(fields.get("ID"))
        with_keys = codec.to_bool(fields.get("keys"))
        if not self._keeper.is_primary:
            return await forward_to_leader(self._server, "/v3/lease/timetolive", body)
        leases = self._server.state.leases
        if not leases.exists(lease_id):
            await self._server.log.read_barrier()  # as for keep-alives: a grant may be on its way here
        granted = leases.ttl(lease_id)
        remaining = self._keeper.lessor.remaining(lease_id, time.monotonic())
        out: dict[str, Any] = {"header": self._header(), **_id_field(lease_id)}
        if granted is None or remaining is None:
            out["TTL"] = "-1"
            return codec.dumps(out)
        if remaining >= 1:  # whole seconds left, truncated (etcd); zero is left out
            out["TTL"] = str(int(remaining))
        out["grantedTTL"] = str(granted)
        if with_keys and (keys := leases.keys(lease_id)):
            out["keys"] = [codec.b64encode(key) for key in keys]
        return codec.dumps(out)

    async def leases(self, body: bytes) -> bytes:
        codec.load_body(body, "etcdserverpb.LeaseLeasesRequest")
        ids = self._server.state.leases.ids()
        out: dict[str, Any] = {"header": self._header()}
        if ids:
            out["leases"] = [{"ID": str(lease_id)} for lease_id in ids]
        return codec.dumps(out)

    def _header(self) -> dict[str, Any]:
        return self._server.header(self._server.state.store.revision)

    async def _propose(self, command: LeaseGrantRequest | LeaseRevokeRequest, expected: type[Any]) -> Any:
        result = await self._server.log.propose(commands.encode(command), command)
        if isinstance(result, EtcdError):
            raise result
        if not isinstance(result, expected):
            raise TypeError(f"expected {expected.__name__} from apply, got {result!r}")
        return result


def new_lease_id(server: CorralServer) -> int:
    """A fresh positive int64 (etcd mixes member id, time and a counter; any unused id will do)."""
    while True:
        candidate = random.getrandbits(63)
        if candidate and not server.state.leases.exists(candidate):
            return candidate


def _id_field(lease_id: int) -> dict[str, str]:
    return {"ID": str(lease_id)} if lease_id else {}  # proto3 JSON leaves a zero ID out


def _lease_ids(batch: list[dict[str, Any]]) -> tuple[list[int], codec.DecodeError | None]:
    """The IDs of a batch of keep-alive requests up to the first bad one, and its error."""
    ids = []
    for fields in batch:
        try:
            ids.append(codec.to_int(fields.get("ID")))
        except codec.DecodeError as error:
            return ids, error
    return ids, None
