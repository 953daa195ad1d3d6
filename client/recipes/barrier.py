"""Barriers: `Barrier` holds everyone until it is removed; `DoubleBarrier` lets a group of `num_clients`
start together (`enter`) and finish together (`leave`).

Guarantee: `Barrier.wait()` returns only once the barrier key `<name>` does not exist (a removal is never
missed: the wait watches from the revision it read). `DoubleBarrier.enter()` returns once `num_clients`
participants have entered (the one who completes the group creates `<name>/ready`), `leave()` once every
participant has left. Participants are the keys `<name>/waiters/<lease id in hex>`, attached to their
leases: a participant that dies stops counting when its lease expires.

Limit: the barrier key is not attached to a lease (a crashed holder leaves it up until someone removes
it). A double barrier name serves one round at a time: `<name>/ready` is deleted by the last to leave, and
a participant entering a new round before that passes straight through.
"""

from __future__ import annotations

import asyncio
import contextlib

from corral.client._async import AsyncClient
from corral.client._errors import CompactedError
from corral.client._models import RangeResult
from corral.client._sync import Client
from corral.client.recipes._common import (
    LeasedTwin,
    LeaseLike,
    OnLost,
    Place,
    RecipeLease,
    closing,
    guarded,
    key_of,
    on_portal,
    queue_for,
    wait_deleted,
    withdraw,
)
from corral.client.txn import KeyLike, to_bytes
from corral.client.txn import create as create_of
from corral.client.txn import get as get_op
from corral.client.txn import put as put_op

__all__ = ["AsyncBarrier", "AsyncDoubleBarrier", "Barrier", "DoubleBarrier"]


class AsyncBarrier:
    """A barrier at the key `name` (kazoo's `Barrier`): `create()`, `wait()` until `remove()`."""

    def __init__(self, client: AsyncClient, name: KeyLike) -> None:
        self.client = client
        self.key = key_of(name)

    async def create(self) -> bool:
        """Put the barrier up; False if it already was."""
        return await self.client.put_if_not_exists(self.key, b"")

    async def remove(self) -> bool:
        """Take the barrier down, releasing every waiter; False if it was not up."""
        return (await self.client.delete(self.key)).deleted > 0

    async def wait(self, timeout: float | None = None) -> bool:
        """Block until the barrier is down: True, or False after `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = await self.client.get(self.key)
                    if not found.kvs:
                        return True
                    await wait_deleted(self.client, self.key, found.header.revision + 1)
        except TimeoutError:
            return False


class AsyncDoubleBarrier:
    """A double barrier for `num_clients` participants (kazoo's `DoubleBarrier`: `enter()`, `leave()`).

    Each participant's key lives on a lease of TTL `ttl` (or the caller's `lease`); `on_lost` is called
    if that lease goes while inside."""

    def __init__(
        self,
        client: AsyncClient,
        name: KeyLike,
        num_clients: int,
        ttl: int = 10,
        *,
        identifier: KeyLike = b"",
        lease: LeaseLike | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        if num_clients < 1:
            raise ValueError("num_clients must be at least 1")
        self.client = client
        self.name = key_of(name)
        self.num_clients = num_clients
        self.identifier = to_bytes(identifier)
        self.ready_key = self.name + b"/ready"
        self.waiters = self.name + b"/waiters/"
        self._lease = RecipeLease(client, ttl, lease, on_lost)
        self._place: Place | None = None

    @property
    def lost(self) -> asyncio.Event:
        return self._lease.lost

    @property
    def participating(self) -> bool:
        return self._place is not None

    async def enter(self, timeout: float | None = None) -> bool:
        """Join, and block until `num_clients` have joined: True, or False (having left) after `timeout`."""
        if self._place is not None:
            raise RuntimeError("already entered; leave() first")
        place: Place | None = None
        try:
            lease_id = await self._lease.start()
            place, _, _ = await queue_for(self.client, self.waiters, lease_id, self.identifier)
            await guarded(self._until_ready(), self._lease, timeout)
        except TimeoutError:
            await withdraw(self.client, place, self._lease)
            return False
        except BaseException:
            await withdraw(self.client, place, self._lease)
            raise
        self._place = place
        return True

    async def _until_ready(self) -> None:
        while True:
            state = await self.client.txn(
                [], [get_op(self.ready_key), get_op(self.waiters, prefix=True, count_only=True)]
            )
            ready, waiters = (r for r in state.responses if isinstance(r, RangeResult))
            if ready.kvs:
                return
            if waiters.count >= self.num_clients:
                await self.client.txn([create_of(self.ready_key) == 0], [put_op(self.ready_key, b"")])
                return
            await _next_change(self.client, self.name + b"/", state.revision + 1)

    async def leave(self, timeout: float | None = None) -> bool:
        """Leave, and block until every participant has left: True, or False after `timeout` (left anyway)."""
        place, self._place = self._place, None
        await withdraw(self.client, place, self._lease)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    state = await self.client.get(self.waiters, prefix=True, count_only=True)
                    if state.count == 0:
                        await self.client.delete(self.ready_key)
                        return True
                    await _next_change(self.client, self.waiters, state.header.revision + 1)
        except TimeoutError:
            return False


async def _next_change(client: AsyncClient, prefix: bytes, start_revision: int) -> None:
    """Until anything changes under `prefix` at or after `start_revision` (or that history is compacted)."""
    with contextlib.suppress(CompactedError):
        async with client.watch(prefix, prefix=True, start_revision=start_revision) as watch:
            async with closing(watch.responses()) as responses:
                async for response in responses:
                    if response.events:
                        return


class Barrier:
    """The blocking twin of `AsyncBarrier`."""

    def __init__(self, client: Client, name: KeyLike) -> None:
        self._portal = client.portal()
        self._async = AsyncBarrier(self._portal.client, name)

    @property
    def key(self) -> bytes:
        return self._async.key

    def create(self) -> bool:
        return on_portal(self._portal, self._async.create)

    def remove(self) -> bool:
        return on_portal(self._portal, self._async.remove)

    def wait(self, timeout: float | None = None) -> bool:
        return on_portal(self._portal, self._async.wait, timeout)


class DoubleBarrier(LeasedTwin[AsyncDoubleBarrier]):
    """The blocking twin of `AsyncDoubleBarrier`, run on the client's portal loop."""

    def __init__(
        self,
        client: Client,
        name: KeyLike,
        num_clients: int,
        ttl: int = 10,
        *,
        identifier: KeyLike = b"",
        lease: LeaseLike | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        super().__init__(client, on_lost)
        self._async = AsyncDoubleBarrier(
            self._portal.client, name, num_clients, ttl, identifier=identifier, lease=lease, on_lost=self._lost
        )

    @property
    def num_clients(self) -> int:
        return self._async.num_clients

    @property
    def participating(self) -> bool:
        return self._async.participating

    def enter(self, timeout: float | None = None) -> bool:
        return self._begin(self._async.enter, timeout)

    def leave(self, timeout: float | None = None) -> bool:
        return on_portal(self._portal, self._async.leave, timeout)
