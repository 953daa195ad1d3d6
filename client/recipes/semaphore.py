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

from types import TracebackType

from corral.client._async import AsyncClient
from corral.client._models import KeyValue
from corral.client._sync import Client
from corral.client.recipes._common import Contender, HolderTwin, LeaseLike, OnLost, on_portal, still_held
from corral.client.txn import KeyLike

__all__ = ["AsyncSemaphore", "Semaphore"]


class AsyncSemaphore(Contender):
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
        super().__init__(client, name, ttl, identifier, lease, on_lost)
        self.max_leases = max_leases

    @property
    def fencing_token(self) -> int | None:
        """The create revision of the held slot's key (None when not held)."""
        return self._place.revision if self._place else None

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a slot: True once held, False if none is free (`blocking=False`) or none was granted within
        `timeout` seconds. Raises `LeaseLostError` / `KeyLost` as `AsyncLock.acquire`."""
        busy = "this semaphore object is already acquiring or holding a slot"
        return await self._take(self.max_leases, blocking, timeout, busy)

    async def release(self) -> bool:
        """Give the slot back; False if this object held none."""
        return await self._leave()

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


class Semaphore(HolderTwin[AsyncSemaphore]):
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
        super().__init__(client, on_lost)
        self._async = AsyncSemaphore(
            self._portal.client, name, max_leases, ttl, identifier=identifier, lease=lease, on_lost=self._lost
        )

    @property
    def max_leases(self) -> int:
        return self._async.max_leases

    def lease_holders(self) -> list[KeyValue]:
        return on_portal(self._portal, self._async.lease_holders)
