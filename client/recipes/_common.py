"""What the recipes share: the lease their keys live on, queues ordered by create revision, waiting for
keys to go, cleanup that survives cancellation, and the plumbing of the blocking twins.

A queue is etcd's: a contender is the key `<prefix><lease id in hex>` attached to its lease, its place is
the key's create revision, and it waits only for the next older key to be deleted (etcd's waitDeletes),
so a release wakes one waiter, not the herd (a semaphore, which counts the keys ahead, follows all their
deletions instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, ParamSpec, Protocol, Self, TypeVar

from corral.client._async import AsyncClient, AsyncLease
from corral.client._errors import CompactedError, CorralError, LeaseLostError
from corral.client._models import EventType, KeyValue, RangeResult
from corral.client._portal import Portal, run_callback
from corral.client._sync import Client
from corral.client.txn import KeyLike, Op, to_bytes
from corral.client.txn import create as create_of
from corral.client.txn import delete as delete_op
from corral.client.txn import get as get_op
from corral.client.txn import put as put_op

__all__ = ["KeyLost", "LeaseLike", "OnLost"]

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")
OnLost = Callable[[LeaseLostError], Any]
logger = logging.getLogger("corral.client.recipes")

_POLL = 0.05  # how often a recipe looks at its lease's keep-alive state
_CLEANUP_TRIES = 4
_background: set[asyncio.Task[Any]] = set()  # cleanups that outlive a cancelled caller


class KeyLost(CorralError):
    """A recipe's own key was deleted while it waited: its lease expired on the server, or another client
    deleted the key. The place in the queue is gone; nothing was acquired."""

    def __init__(self, key: bytes) -> None:
        super().__init__(f"key {key!r} was deleted (its lease expired or another client deleted it)")
        self.key = key


class LeaseLike(Protocol):
    """What a recipe needs of a caller's lease: `Lease` (blocking) and `AsyncLease` both fit."""

    @property
    def id(self) -> int: ...

    @property
    def lost(self) -> bool: ...

    def check(self) -> None: ...


class RecipeLease:
    """The lease a recipe's keys live on, between `start()` and `stop()`.

    Without a caller's lease the recipe grants its own at `start()` (kept alive by a task) and revokes it
    at `stop()`, so nothing outlives a use. `lost` is set (and `on_lost` called once, on the loop) if the
    lease goes while in use.
    """

    def __init__(self, client: AsyncClient, ttl: int, lease: LeaseLike | None, on_lost: OnLost | None) -> None:
        self._client = client
        self._ttl = ttl
        self._borrowed = lease
        self._lease: LeaseLike | None = None
        self._on_lost = on_lost
        self._monitor: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()

    @property
    def id(self) -> int:
        """The lease in use (0 outside `start()`/`stop()`)."""
        return self._lease.id if self._lease is not None else 0

    async def start(self) -> int:
        if self._lease is not None:
            return self._lease.id
        self.lost.clear()
        if self._borrowed is None:
            self._lease = await self._client.lease(self._ttl)
        else:
            self._borrowed.check()
            self._lease = self._borrowed
        self._monitor = asyncio.create_task(self._watch(self._lease), name=f"corral-recipe-lease-{self.id:x}")
        return self._lease.id

    def check(self) -> None:
        """Raise `LeaseLostError` if the lease in use is gone."""
        if self._lease is not None:
            self._lease.check()

    async def stop(self) -> None:
        lease, self._lease = self._lease, None
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
        if isinstance(lease, AsyncLease) and lease is not self._borrowed:
            await lease.revoke()

    async def _watch(self, lease: LeaseLike) -> None:
        while not lease.lost:
            await asyncio.sleep(_POLL)
        try:
            lease.check()
        except LeaseLostError as error:
            self.lost.set()
            if self._on_lost is not None:
                run_callback(self._on_lost, error)


@dataclass(frozen=True, slots=True)
class Place:
    """A contender's key in a queue: `revision` (its create revision) orders the queue and fences."""

    key: bytes
    revision: int
    lease: int


def candidate_key(prefix: bytes, lease_id: int) -> bytes:
    return prefix + format(lease_id, "x").encode()


def oldest_op(prefix: bytes) -> Op:
    return get_op(prefix, prefix=True, sort_target="CREATE", sort_order="ASCEND", limit=1)


async def queue_for(
    client: AsyncClient, prefix: bytes, lease_id: int, value: bytes
) -> tuple[Place, KeyValue | None, KeyValue | None]:
    """Join the queue under `prefix`: (our place, the key we found there already if any, the queue's head).

    A key this lease already holds is taken over (etcd does the same), so a retry never queues twice.
    """
    key = candidate_key(prefix, lease_id)
    result = await client.txn(
        [create_of(key) == 0],
        [put_op(key, value, lease=lease_id), oldest_op(prefix)],
        [get_op(key), oldest_op(prefix)],
    )
    head = _first(result.responses[1])
    if result.succeeded:
        return Place(key, result.revision, lease_id), None, head
    existing = _first(result.responses[0])
    assert existing is not None  # the compare failed because the key exists, in the same revision
    return Place(key, existing.create_revision, lease_id), existing, head


def _first(response: object) -> KeyValue | None:
    return response.first if isinstance(response, RangeResult) else None


async def wait_predecessors(client: AsyncClient, prefix: bytes, revision: int, ahead: int = 1) -> None:
    """Until fewer than `ahead` keys under `prefix` are older than `revision`.

    With `ahead` 1 (a lock, an election) only the next older key is watched, for its deletion; then the
    queue is read again, as a key further ahead may have gone meanwhile.
    """
    if ahead == 1:
        while True:
            older = await client.get(prefix, prefix=True, keys_only=True, sort_target="CREATE",
                                     sort_order="DESCEND", limit=1, max_create_revision=revision - 1)  # fmt: skip
            if not older.kvs:
                return
            await wait_deleted(client, older.kvs[0].key, older.header.revision + 1)
    while not await _fewer_older(client, prefix, revision, ahead):
        pass


async def _fewer_older(client: AsyncClient, prefix: bytes, revision: int, ahead: int) -> bool:
    """Count the keys older than `revision`, then follow their deletions until fewer than `ahead` remain.
    False when history was compacted under the watch (count again)."""
    older = await client.get(prefix, prefix=True, keys_only=True, max_create_revision=revision - 1)
    keys = {kv.key for kv in older.kvs}
    if len(keys) < ahead:
        return True
    try:
        async with client.watch(prefix, prefix=True, start_revision=older.header.revision + 1,
                                filters=["NOPUT"]) as watch:  # fmt: skip
            async with closing(watch.responses()) as responses:
                async for response in responses:
                    keys.difference_update(e.key for e in response.events if e.type is EventType.DELETE)
                    if len(keys) < ahead:
                        return True
    except CompactedError:
        return False
    return False


async def wait_deleted(client: AsyncClient, key: bytes, start_revision: int) -> None:
    """Until `key` is deleted at or after `start_revision` (returns early if that history was compacted:
    the caller looks again)."""
    with contextlib.suppress(CompactedError):
        async with client.watch(key, start_revision=start_revision, filters=["NOPUT"]) as watch:
            async with closing(watch.responses()) as responses:
                async for response in responses:
                    if any(event.type is EventType.DELETE for event in response.events):
                        return


async def confirm(client: AsyncClient, place: Place) -> None:
    """Raise `KeyLost` unless our key still exists in the generation we created."""
    found = (await client.get(place.key)).first
    if found is None or found.create_revision != place.revision:
        raise KeyLost(place.key)


async def still_held(client: AsyncClient, place: Place | None, lease: RecipeLease) -> bool:
    if place is None or lease.lost.is_set():
        return False
    found = (await client.get(place.key)).first
    return found is not None and found.create_revision == place.revision


async def guarded(work: Awaitable[T], lease: RecipeLease, timeout: float | None) -> T:
    """`work`'s result; `LeaseLostError` if the lease goes first; `TimeoutError` after `timeout` seconds."""
    task = asyncio.ensure_future(work)
    lost = asyncio.ensure_future(lease.lost.wait())
    try:
        async with asyncio.timeout(timeout):
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, lost):
            pending.cancel()
        await asyncio.gather(task, lost, return_exceptions=True)
    if lost.done() and not lost.cancelled():
        lease.check()
    return task.result()


async def withdraw(client: AsyncClient, place: Place | None, lease: RecipeLease) -> None:
    """Delete our key (only the generation we created) and let go of the lease, even if the caller is being
    cancelled. Retried a few times; past that the lease's expiry removes the key."""

    async def work() -> None:
        try:
            if place is not None:
                await _delete_own(client, place)
        finally:
            await lease.stop()

    await finish(work())


async def finish(work: Coroutine[Any, Any, None]) -> None:
    """Run cleanup `work` to its end: a cancelled caller stops waiting for it, the cleanup goes on."""
    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
    await asyncio.shield(task)


async def _delete_own(client: AsyncClient, place: Place) -> None:
    for attempt in range(_CLEANUP_TRIES):
        try:
            await client.txn([create_of(place.key) == place.revision], [delete_op(place.key)])
            return
        except CorralError as exc:
            if attempt == _CLEANUP_TRIES - 1:
                logger.warning("could not delete %r (%s); it goes when lease %x expires", place.key, exc, place.lease)
                return
            await asyncio.sleep(0.1 * 2**attempt)


class Contender:
    """One key in the queue under `<name>/`, on a `RecipeLease`: what a lock, a semaphore and an election
    share. `_take` joins the queue and waits for a turn, `_leave` gives the place up; the key is withdrawn
    after every failure."""

    def __init__(
        self,
        client: AsyncClient,
        name: KeyLike,
        ttl: int,
        identifier: KeyLike,
        lease: LeaseLike | None,
        on_lost: OnLost | None,
    ) -> None:
        self.client = client
        self.name = key_of(name)
        self.prefix = self.name + b"/"
        self.identifier = to_bytes(identifier)
        self._lease = RecipeLease(client, ttl, lease, on_lost)
        self._place: Place | None = None
        self._joining = False  # while a `_take` (or a campaign) is under way

    @property
    def lost(self) -> asyncio.Event:
        """Set when the lease is lost while waiting or holding (cleared by the next acquire or campaign)."""
        return self._lease.lost

    @property
    def lease_id(self) -> int:
        """The lease holding the contender key (0 when neither waiting nor holding)."""
        return self._lease.id

    async def _take(self, ahead: int, blocking: bool, timeout: float | None, busy: str) -> bool:
        """Join the queue with `identifier` and wait until fewer than `ahead` keys are older than ours: True
        once in; False if not in at once and not `blocking`, or not within `timeout` seconds. Raises
        `RuntimeError(busy)` if this object already waits or holds, `LeaseLostError` if the lease goes while
        waiting, `KeyLost` if the key is deleted. The key is gone after every False or raise."""
        if self._joining or self._place is not None:
            raise RuntimeError(busy)
        self._joining = True
        place: Place | None = None
        try:
            lease_id = await self._lease.start()
            place, _, head = await queue_for(self.client, self.prefix, lease_id, self.identifier)
            if not await self._in_at_once(place, head, ahead):
                if not blocking:
                    await withdraw(self.client, place, self._lease)
                    return False
                try:
                    waiting = wait_predecessors(self.client, self.prefix, place.revision, ahead)
                    await guarded(waiting, self._lease, timeout)
                except TimeoutError:
                    await withdraw(self.client, place, self._lease)
                    return False
                await confirm(self.client, place)
        except BaseException:
            await withdraw(self.client, place, self._lease)
            raise
        finally:
            self._joining = False
        self._place = place
        return True

    async def _in_at_once(self, place: Place, head: KeyValue | None, ahead: int) -> bool:
        """Whether fewer than `ahead` keys are older than ours (for one, the head read with the join tells)."""
        if ahead == 1:
            return head is not None and head.create_revision == place.revision
        older = await self.client.get(self.prefix, prefix=True, keys_only=True, max_create_revision=place.revision - 1)
        return len(older.kvs) < ahead  # (count ignores the revision filter, so count the keys)

    async def _leave(self) -> bool:
        """Delete our key (the next in the queue moves up) and let go of the lease; False if we held none."""
        place, self._place = self._place, None
        if place is None:
            return False
        await withdraw(self.client, place, self._lease)
        return True


@contextlib.asynccontextmanager
async def closing(iterator: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close an async generator when the block ends (a `break` leaves it suspended otherwise)."""
    try:
        yield iterator
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def key_of(name: KeyLike) -> bytes:
    key = to_bytes(name)
    if not key:
        raise ValueError("a recipe needs a non-empty name")
    return key


# -- the blocking twins -------------------------------------------------------------------------------------


def on_portal(portal: Portal, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn` on the portal's loop and wait; if the wait is interrupted (KeyboardInterrupt), the call is
    cancelled so that its cleanup (deleting a contender key) runs."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is portal.loop:
        raise RuntimeError("a blocking recipe call on the portal's own loop (from an on_lost callback?) deadlocks")
    future = portal.submit(fn, *args, **kwargs)
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


def iterate(portal: Portal, iterator: AsyncIterator[T]) -> Iterator[T]:
    """A blocking iterator over an async generator on the portal, closed there when the caller stops."""
    try:
        while True:
            try:
                item = on_portal(portal, _next, iterator)
            except StopAsyncIteration:
                return
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None and not portal.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # still running: an interrupted step finishes it
                on_portal(portal, close)


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


class ThreadLost:
    """The blocking twin's `lost`: a `threading.Event` set (and the caller's callback run) on the portal."""

    def __init__(self, on_lost: OnLost | None) -> None:
        self.event = threading.Event()
        self._on_lost = on_lost

    def __call__(self, error: LeaseLostError) -> None:
        self.event.set()
        if self._on_lost is not None:
            self._on_lost(error)


class LeasedTwin(Generic[R]):
    """Base of a blocking twin whose recipe holds a lease: the client's portal it runs on, and `lost` as a
    `threading.Event`. A subclass builds `_async` on `_portal.client` with `on_lost=self._lost`."""

    _async: R

    def __init__(self, client: Client, on_lost: OnLost | None) -> None:
        self._portal = client.portal()
        self._lost = ThreadLost(on_lost)

    @property
    def lost(self) -> threading.Event:
        """Set when the lease is lost while waiting or holding (cleared by the next acquire, campaign or enter)."""
        return self._lost.event

    def _begin(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """`on_portal` for a call that starts a new hold (acquire, campaign, enter): `lost` is cleared first."""
        self._lost.event.clear()
        return on_portal(self._portal, fn, *args, **kwargs)


class AsyncHolder(Protocol):
    """What `HolderTwin` forwards to: an async lock or semaphore."""

    @property
    def lease_id(self) -> int: ...

    @property
    def fencing_token(self) -> int | None: ...

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool: ...

    async def release(self) -> bool: ...

    async def is_acquired(self) -> bool: ...

    async def contenders(self) -> list[KeyValue]: ...


H = TypeVar("H", bound=AsyncHolder)


class HolderTwin(LeasedTwin[H]):
    """Base of the blocking lock and semaphore: the async holder's methods, run on the portal."""

    @property
    def lease_id(self) -> int:
        """The lease holding the contender key (0 when neither waiting nor holding)."""
        return self._async.lease_id

    @property
    def fencing_token(self) -> int | None:
        """The create revision of the held key (None when not held); it grows with every grant."""
        return self._async.fencing_token

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """As the async recipe's `acquire`, waiting in this thread."""
        return self._begin(self._async.acquire, blocking, timeout)

    def release(self) -> bool:
        return on_portal(self._portal, self._async.release)

    def is_acquired(self) -> bool:
        return on_portal(self._portal, self._async.is_acquired)

    def contenders(self) -> list[KeyValue]:
        return on_portal(self._portal, self._async.contenders)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
