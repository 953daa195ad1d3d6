"""A counting semaphore: at most `max_leases` holders at a time, granted in arrival order.

Guarantee: at any revision the holders are the `max_leases` oldest keys under `<name>/` (by create
revision), so there are never more than `max_leases`, and waiters are let in in arrival order. Keys are
`<name>/<lease id in hex>` attached to the holder's lease: a crashed holder's slot frees itself when its
lease expires. A failed non-blocking or timed-out acquire, an error or a cancellation deletes the key.

Limit: every participant must use the same `max_leases` (nothing checks it). A waiter watches the whole
queue for deletions, so a release wakes every waiter to recount (none acts unless its turn came). As with
the lock, a holder paused past its TTL loses its slot silently: use `fencing_token` where that matters.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from corral.client._async import AsyncClient
from corral.client._models import KeyValue
from corral.client._sync import Client
from corral.client.recipes._common import (
    LeaseLike,
    OnLost,
    Place,
    RecipeLease,
    ThreadLost,
    confirm,
    guarded,
    key_of,
    on_portal,
    queue_for,
    still_held,
    wait_predecessors,
    withdraw,
)
from corral.client.txn import KeyLike, to_bytes

__all__ = ["AsyncSemaphore", "Semaphore"]


class AsyncSemaphore:
    """A semaphore named `name` with `max_leases` slots (kazoo's names: `acquire`, `release`,
    `lease_holders`). Each acquire holds its slot through a lease of TTL `ttl` (or the caller's `lease`)."""

    def __init__(
        self,
        client: AsyncClient,
        name: KeyLike,
        max_leases: int = 1,
        ttl: int = 10,
        *,
        identifier: KeyLike = b"",
        lease: LeaseLike | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        if max_leases < 1:
            raise ValueError("max_leases must be at least 1")
        self.client = client
        self.name = key_of(name)
        self.prefix = self.name + b"/"
        self.max_leases = max_leases
        self.identifier = to_bytes(identifier)
        self._lease = RecipeLease(client, ttl, lease, on_lost)
        self._place: Place | None = None
        self._acquiring = False

    @property
    def lost(self) -> asyncio.Event:
        """Set when the lease is lost while waiting or holding (cleared by the next acquire)."""
        return self._lease.lost

    @property
    def lease_id(self) -> int:
        return self._lease.id

    @property
    def fencing_token(self) -> int | None:
        """The create revision of the held slot's key (None when not held)."""
        return self._place.revision if self._place else None

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a slot: True once held, False if none is free (`blocking=False`) or none was granted within
        `timeout` seconds. Raises `LeaseLostError` / `KeyLost` as `AsyncLock.acquire`."""
        if self._acquiring or self._place is not None:
            raise RuntimeError("this semaphore object is already acquiring or holding a slot")
        self._acquiring = True
        place: Place | None = None
        try:
            lease_id = await self._lease.start()
            place, _, _ = await queue_for(self.client, self.prefix, lease_id, self.identifier)
            older = await self.client.get(
                self.prefix, prefix=True, keys_only=True, max_create_revision=place.revision - 1
            )  # (count ignores the revision filter, so count the keys)
            if len(older.kvs) >= self.max_leases:
                if not blocking:
                    await withdraw(self.client, place, self._lease)
                    return False
                waiting = wait_predecessors(self.client, self.prefix, place.revision, self.max_leases)
                try:
                    await guarded(waiting, self._lease, timeout)
                except TimeoutError:
                    await withdraw(self.client, place, self._lease)
                    return False
                await confirm(self.client, place)
        except BaseException:
            await withdraw(self.client, place, self._lease)
            raise
        finally:
            self._acquiring = False
        self._place = place
        return True

    async def release(self) -> bool:
        """Give the slot back; False if this object held none."""
        place, self._place = self._place, None
        if place is None:
            return False
        await withdraw(self.client, place, self._lease)
        return True

    async def is_acquired(self) -> bool:
        """Whether this object holds a slot now (asks the server)."""
        return await still_held(self.client, self._place, self._lease)

    async def contenders(self) -> list[KeyValue]:
        """Holders then waiters, in the order they were (or will be) let in."""
        return (await self.client.get(self.prefix, prefix=True, sort_target="CREATE", sort_order="ASCEND")).kvs

    async def lease_holders(self) -> list[KeyValue]:
        """The current holders (their keys; `value` is each one's `identifier`)."""
        return (await self.contenders())[: self.max_leases]

    async def __aenter__(self) -> AsyncSemaphore:
        await self.acquire()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class Semaphore:
    """The blocking twin of `AsyncSemaphore`, run on the client's portal loop."""

    def __init__(
        self,
        client: Client,
        name: KeyLike,
        max_leases: int = 1,
        ttl: int = 10,
        *,
        identifier: KeyLike = b"",
        lease: LeaseLike | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        self._portal = client.portal()
        self._lost = ThreadLost(on_lost)
        self._async = AsyncSemaphore(
            self._portal.client, name, max_leases, ttl, identifier=identifier, lease=lease, on_lost=self._lost
        )

    @property
    def lost(self) -> threading.Event:
        return self._lost.event

    @property
    def max_leases(self) -> int:
        return self._async.max_leases

    @property
    def lease_id(self) -> int:
        return self._async.lease_id

    @property
    def fencing_token(self) -> int | None:
        return self._async.fencing_token

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        self._lost.event.clear()
        return on_portal(self._portal, self._async.acquire, blocking, timeout)

    def release(self) -> bool:
        return on_portal(self._portal, self._async.release)

    def is_acquired(self) -> bool:
        return on_portal(self._portal, self._async.is_acquired)

    def contenders(self) -> list[KeyValue]:
        return on_portal(self._portal, self._async.contenders)

    def lease_holders(self) -> list[KeyValue]:
        return on_portal(self._portal, self._async.lease_holders)

    def __enter__(self) -> Semaphore:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
