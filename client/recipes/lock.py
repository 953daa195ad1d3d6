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

from types import TracebackType

from corral.client._async import AsyncClient
from corral.client._models import KeyValue
from corral.client._sync import Client
from corral.client.recipes._common import Contender, HolderTwin, LeaseLike, OnLost, still_held
from corral.client.txn import KeyLike

__all__ = ["AsyncLock", "Lock"]


class AsyncLock(Contender):
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
        super().__init__(client, name, ttl, identifier, lease, on_lost)

    @property
    def key(self) -> bytes | None:
        return self._place.key if self._place else None

    @property
    def fencing_token(self) -> int | None:
        """The create revision of the held key (None when not held); it grows with every grant."""
        return self._place.revision if self._place else None

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock: True once held, False if not free (`blocking=False`) or not granted within
        `timeout` seconds. Raises `LeaseLostError` if the lease goes while waiting, `KeyLost` if the key
        is deleted. The contender key is gone after every False or raise."""
        return await self._take(1, blocking, timeout, "this lock object is already acquiring or holding the lock")

    async def release(self) -> bool:
        """Let the next waiter in; False if this object did not hold the lock."""
        return await self._leave()

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


class Lock(HolderTwin[AsyncLock]):
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
        super().__init__(client, on_lost)
        self._async = AsyncLock(self._portal.client, name, ttl, identifier=identifier, lease=lease, on_lost=self._lost)

    @property
    def name(self) -> bytes:
        return self._async.name

    @property
    def key(self) -> bytes | None:
        return self._async.key
