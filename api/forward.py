"""Forwarding a request to the leader's client URL, for what only the leader can answer (learner
promotion, lease keep-alives and remaining TTLs), as etcd forwards them over its peer API."""

from __future__ import annotations

import httpx
from corral.store.errors import EtcdError, GrpcCode

from .errors import NoLeaderError
from .server import CorralServer

FORWARD_TIMEOUT = 10.0


async def forward_to_leader(server: CorralServer, path: str, body: bytes) -> bytes:
    """POST `body` to `path` on the leader; its error comes back as the same etcd error."""
    log = server.log
    leader = next((m for m in log.members() if m.id == log.status().leader_id), None)
    if leader is None or not leader.client_urls:
        raise NoLeaderError()
    async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT) as client:
        try:
            response = await client.post(leader.client_urls[0].rstrip("/") + path, content=body)
        except httpx.HTTPError as exc:
            raise NoLeaderError(f"etcdserver: forwarding to the leader failed: {exc}") from exc
    if response.status_code != 200:
        try:
            error = response.json()
            raise EtcdError(str(error["message"]), GrpcCode(int(error["code"])))
        except (ValueError, KeyError, TypeError):
            raise NoLeaderError(f"etcdserver: the leader answered {response.status_code}") from None
    return response.content
