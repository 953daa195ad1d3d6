"""A distributed mutex, fair by arrival, with a fencing token.

Guarantee: at any revision at most one holder: the owner of the oldest key under `<name>/`. Waiters queue
by create revision and each waits only for its predecessor's key to be deleted (no herd on release), so
the lock is granted in arrival order. The keys are etcd's (`<name>/<lease id in hex>`), so the recipe and
the server's `/v3/lock` routes exclude each other. A failed non-blocking or timed-out acquire, an error or a
cancellation deletes the contender key; `lost` fires when the lease goes while holding or waiting.

Limit: a lease lock cannot by itself guarantee mutual exclusion in time: a holder paused past its TTL
loses the lock without knowing until it looks. Hand `fencing_token` (the key's create revision, growing
with every grant) to the resource, which refuses tokens older than the newest it has seen, or compare it
in a txn.
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

__all__ = ["AsyncLock", "Lock"]


class AsyncLock:
    """A mutex named `name`, held through a lease (TTL `ttl`) kept alive while held.

        async with AsyncLock(client, "jobs/reindex", ttl=10) as lock:
            await storage.write(data, fencing_token=lock.fencing_token)

    Without `lease` each acquire grants a lease and `release()` revokes it; with a caller's lease, that
    lease holds the key (one key per lease and name, as etcd's mutex). `on_lost` is called on the loop.
    """

    def __init__(
        self,
        client: AsyncClient,
        name: KeyLike,
        ttl: int = 10,
        *,
        identifier: KeyLike = b"",
        lease: LeaseLike | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        self.client = client
        self.name = key_of(name)
        self.prefix = self.name + b"/"
        self.identifier = to_bytes(identifier)
        self._lease = RecipeLease(client, ttl, lease, on_lost)
        self._place: Place | None = None
        self._acquiring = False

    @property
    def lost(self) -> asyncio.Event:
        """Set when the lease is lost while waiting or holding (cleared by the next acquire)."""
        return self._lease.lost

    @property
    def key(self) -> bytes | None:
        return self._place.key if self._place else None

    @property
    def lease_id(self) -> int:
        """The lease holding the contender key (0 when neither waiting nor holding)."""
        return self._lease.id

    @property
    def fencing_token(self) -> int | None:
        """The create revision of the held key (None when not held); it grows with every grant."""
        return self._place.revision if self._place else None

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock: True once held, False if not free (`blocking=False`) or not granted within
        `timeout` seconds. Raises `LeaseLostError` if the lease goes while waiting, `KeyLost` if the key
        is deleted. The contender key is gone after every False or raise."""
        if self._acquiring or self._place is not None:
            raise RuntimeError("this lock object is already acquiring or holding the lock")
        self._acquiring = True
        place: Place | None = None
        try:
            lease_id = await self._lease.start()
            place, _, head = await queue_for(self.client, self.prefix, lease_id, self.identifier)
            if head is None or head.create_revision != place.revision:
                if not blocking:
                    await withdraw(self.client, place, self._lease)
                    return False
                try:
                    await guarded(wait_predecessors(self.client, self.prefix, place.revision), self._lease, timeout)
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
        """Let the next waiter in; False if this object did not hold the lock."""
        place, self._place = self._place, None
        if place is None:
            return False
        await withdraw(self.client, place, self._lease)
        return True

    async def is_acquired(self) -> bool:
        """Whether this object holds the lock now (asks the server)."""
        return await still_held(self.client, self._place, self._lease)

    async def contenders(self) -> list[KeyValue]:
        """The holder, then the waiters in the order they will get the lock."""
        return (await self.client.get(self.prefix, prefix=True, sort_target="CREATE", sort_order="ASCEND")).kvs

    async def __aenter__(self) -> AsyncLock:
        await self.acquire()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class Lock:
    """The blocking twin of `AsyncLock` (kazoo's and python-etcd3's names): `with Lock(client, "x"):`.
    The lease is kept alive on the client's portal loop; `on_lost` runs there (so it must not call
    blocking recipe methods)."""

    def __init__(
        self,
        client: Client,
        name: KeyLike,
        ttl: int = 10,
        *,
        identifier: KeyLike = b"",
        lease: LeaseLike | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        self._portal = client.portal()
        self._lost = ThreadLost(on_lost)
        self._async = AsyncLock(self._portal.client, name, ttl, identifier=identifier, lease=lease, on_lost=self._lost)

    @property
    def lost(self) -> threading.Event:
        """Set when the lease is lost while waiting or holding (cleared by the next acquire)."""
        return self._lost.event

    @property
    def name(self) -> bytes:
        return self._async.name

    @property
    def key(self) -> bytes | None:
        return self._async.key

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

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
