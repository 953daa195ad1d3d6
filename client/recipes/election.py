"""Leader election over KV, leases and watches, with etcd's concurrency semantics.

Guarantee: at any revision at most one campaigner is leader: the owner of the oldest key (by create
revision) under `<name>/`. A campaigner's key is `<name>/<lease id in hex>`, attached to its lease, the
same keys etcd's election service uses, so this recipe, etcd's `concurrency.Election` and the server's
`/v3/election` routes agree on the leader. `campaign()` waits only for the next older key to go; it raises
if the lease is lost while it waits, and every failure (error, timeout, cancellation) deletes the
candidate key. `observe()` reports every leader, every value it proclaims, and `None` when there is none.

Limit: leadership is only as good as the lease. A leader that is paused or partitioned for longer than its
TTL is no longer leader, but cannot know it until it next looks. Pass `fencing_token` (the leader key's
create revision, which only grows) to whatever the leader writes to, or write through a txn that compares
it (see `controller.py`); `lost` fires once the keep-alive notices.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import ParamSpec, TypeVar

from corral.client._async import AsyncClient
from corral.client._errors import CompactedError, CorralError
from corral.client._models import EventType, KeyValue
from corral.client._sync import Client
from corral.client.recipes._common import (
    Contender,
    LeasedTwin,
    LeaseLike,
    OnLost,
    Place,
    closing,
    confirm,
    guarded,
    iterate,
    on_portal,
    queue_for,
    still_held,
    wait_predecessors,
    withdraw,
)
from corral.client.txn import KeyLike, to_bytes
from corral.client.txn import create as create_of
from corral.client.txn import put as put_op

__all__ = ["AsyncElection", "Election", "NotLeader"]

T = TypeVar("T")
P = ParamSpec("P")


class NotLeader(CorralError):
    """This campaigner is not (or no longer) the leader: its key is gone or it never campaigned."""


class AsyncElection(Contender):
    """One campaigner in the election `name`.

        election = AsyncElection(client, "controller", ttl=10)
        token = await election.campaign(b"node-1")     # blocks until leader
        ...                                           # act, passing `token` to fenced writes
        await election.resign()

    Without `lease` the election grants its own lease (TTL `ttl`) for each campaign and revokes it at
    `resign()`; with a caller's lease, that lease holds the key and is left alone. `on_lost` is called
    (on the event loop) if the lease goes while campaigning or leading.
    """

    def __init__(
        self,
        client: AsyncClient,
        name: KeyLike,
        *,
        ttl: int = 10,
        lease: LeaseLike | None = None,
        identifier: KeyLike = b"",
        on_lost: OnLost | None = None,
    ) -> None:
        super().__init__(client, name, ttl, identifier, lease, on_lost)

    @property
    def key(self) -> bytes | None:
        """This campaigner's key while leader."""
        return self._place.key if self._place else None

    @property
    def revision(self) -> int | None:
        """The leader key's create revision while leader: the fencing token (it only grows)."""
        return self._place.revision if self._place else None

    fencing_token = revision

    async def campaign(self, value: KeyLike | None = None, timeout: float | None = None) -> int:
        """Block until leader and return the fencing token; `value` (default `identifier`) is proclaimed.

        Raises `LeaseLostError` if the lease goes while waiting, `KeyLost` if the key is deleted,
        `TimeoutError` after `timeout` seconds; in every such case the candidate key is deleted.
        """
        if self._joining or self._place is not None:
            raise RuntimeError("this election object is already campaigning or leading; resign() first")
        data = self.identifier if value is None else to_bytes(value)
        self._joining = True
        place: Place | None = None
        try:
            lease_id = await self._lease.start()
            place, existing, _ = await queue_for(self.client, self.prefix, lease_id, data)
            if existing is not None and existing.value != data:
                await self._proclaim(place, data)
            await guarded(wait_predecessors(self.client, self.prefix, place.revision), self._lease, timeout)
            await confirm(self.client, place)
        except BaseException:
            await withdraw(self.client, place, self._lease)
            raise
        finally:
            self._joining = False
        self._place = place
        return place.revision

    async def proclaim(self, value: KeyLike) -> None:
        """Publish a new value as leader, without losing the place; raises `NotLeader` if not leader."""
        if self._place is None:
            raise NotLeader("not leader: campaign() first")
        await self._proclaim(self._place, to_bytes(value))

    async def _proclaim(self, place: Place, value: bytes) -> None:
        result = await self.client.txn(
            [create_of(place.key) == place.revision], [put_op(place.key, value, lease=place.lease)]
        )
        if not result.succeeded:
            raise NotLeader(f"not leader: {place.key!r} (created at {place.revision}) is gone")

    async def resign(self) -> None:
        """Give up leadership (the next campaigner takes over); a no-op when not leader."""
        await self._leave()

    async def is_leader(self) -> bool:
        """Whether this campaigner's key still exists (asks the server)."""
        return await still_held(self.client, self._place, self._lease)

    async def leader(self) -> KeyValue | None:
        """The leader's key and value now, or None when nobody campaigns."""
        found = await self.client.get(self.prefix, prefix=True, sort_target="CREATE", sort_order="ASCEND", limit=1)
        return found.first

    async def contenders(self) -> list[KeyValue]:
        """Every campaigner, leader first (in create revision order)."""
        return (await self.client.get(self.prefix, prefix=True, sort_target="CREATE", sort_order="ASCEND")).kvs

    async def observe(self) -> AsyncIterator[KeyValue | None]:
        """The leader now (None if none), then each change: a new leader, a new proclaimed value, None when
        the last campaigner goes. Every change is seen, in order; changes in one revision come together."""
        last: tuple[bytes, int, int] | None | bool = False  # False: nothing reported yet
        while True:
            listed = await self.client.get(self.prefix, prefix=True)
            candidates = {kv.key: kv for kv in listed.kvs}
            try:
                async with self.client.watch(self.prefix, prefix=True, start_revision=listed.header.revision + 1) as w:
                    async with closing(w.responses()) as responses:
                        leader = _oldest(candidates)
                        if _identity(leader) != last:
                            last = _identity(leader)
                            yield leader
                        async for response in responses:
                            for event in response.events:
                                if event.type is EventType.PUT:
                                    candidates[event.key] = event.kv
                                else:
                                    candidates.pop(event.key, None)
                            leader = _oldest(candidates)
                            if _identity(leader) != last:
                                last = _identity(leader)
                                yield leader
            except CompactedError:
                continue  # history gone under a slow observer: list again

    async def run(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Campaign with `identifier`, run `fn` as leader, then resign (kazoo's `Election.run`)."""
        await self.campaign()
        try:
            return await fn(*args, **kwargs)
        finally:
            await self.resign()


def _oldest(candidates: dict[bytes, KeyValue]) -> KeyValue | None:
    return min(candidates.values(), key=lambda kv: kv.create_revision, default=None)


def _identity(kv: KeyValue | None) -> tuple[bytes, int, int] | None:
    return None if kv is None else (kv.key, kv.create_revision, kv.mod_revision)


class Election(LeasedTwin[AsyncElection]):
    """The blocking twin of `AsyncElection`: the same methods, run on the client's portal loop (the lease
    is kept alive there, and `on_lost` runs there, so it must not call blocking recipe methods).
    `observe()` is a blocking iterator, closed on the loop when the caller stops iterating."""

    def __init__(
        self,
        client: Client,
        name: KeyLike,
        *,
        ttl: int = 10,
        lease: LeaseLike | None = None,
        identifier: KeyLike = b"",
        on_lost: OnLost | None = None,
    ) -> None:
        super().__init__(client, on_lost)
        self._async = AsyncElection(
            self._portal.client, name, ttl=ttl, lease=lease, identifier=identifier, on_lost=self._lost
        )

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
    def revision(self) -> int | None:
        return self._async.revision

    fencing_token = revision

    def campaign(self, value: KeyLike | None = None, timeout: float | None = None) -> int:
        return self._begin(self._async.campaign, value, timeout)

    def proclaim(self, value: KeyLike) -> None:
        on_portal(self._portal, self._async.proclaim, value)

    def resign(self) -> None:
        on_portal(self._portal, self._async.resign)

    def is_leader(self) -> bool:
        return on_portal(self._portal, self._async.is_leader)

    def leader(self) -> KeyValue | None:
        return on_portal(self._portal, self._async.leader)

    def contenders(self) -> list[KeyValue]:
        return on_portal(self._portal, self._async.contenders)

    def observe(self) -> Iterator[KeyValue | None]:
        return iterate(self._portal, self._async.observe())

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Campaign with `identifier`, call `fn` in this thread as leader, then resign."""
        self.campaign()
        try:
            return fn(*args, **kwargs)
        finally:
            self.resign()
