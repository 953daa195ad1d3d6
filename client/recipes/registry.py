"""Broker registry: each live broker is one key attached to its own lease, as Kafka's `/brokers/ids/{id}`.

    registry = AsyncBrokerRegistry(client)                  # keys under /corral/kafka/cluster/brokers/
    async with await registry.register(1, "10.0.0.1", 9092, rack="a", ttl=10) as me:
        brokers = await registry.list()                     # [BrokerInfo(broker_id=1, ...)]
        async for change in registry.changes(): ...         # SNAPSHOT, then JOIN / UPDATE / LEAVE

Guarantee: a broker id is registered at most once at a time (the key is created only if absent, in one
txn), and its registration lives exactly as long as its lease: a broker that exits, crashes or is cut
off stops renewing and disappears within its TTL, and every subscriber sees it leave. `BrokerInfo.epoch`
(the key's create revision, Kafka's broker epoch) grows with every registration, so a write can be fenced
against a broker's earlier life. Subscribers list at revision R and watch from R + 1, so they see every
join and leave in order; after a compaction or a long outage they list again and are told the difference
(a broker that came and went inside that gap is not reported).

Keys (root default `/corral/kafka/`): `{root}cluster/brokers/{id}` = BrokerInfo as JSON, on the lease.

Limit: liveness is the lease's: a broker that is alive but partitioned from the cluster for longer than
its TTL is reported gone (and believes it is registered until its keep-alive gives up, just after the
TTL: check `lost`, or pass `on_lost`). A crashed broker's id stays taken until its lease expires, so a
quick restart must retry `register` (as Kafka's brokers do).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.client import txn as t
from corral.client._async import AsyncClient, AsyncLease
from corral.client._errors import LeaseLostError
from corral.client._models import EventType, KeyValue, RangeResult
from corral.client._sync import Client
from corral.client.recipes._kafka import (
    DEFAULT_ROOT,
    Changes,
    MetadataError,
    dumps,
    follow_prefix,
    invoke,
    iterate,
    loads,
    normalize_root,
)

__all__ = [
    "AsyncBrokerRegistration",
    "AsyncBrokerRegistry",
    "AsyncMembershipSubscription",
    "BrokerAlreadyRegisteredError",
    "BrokerInfo",
    "BrokerRegistration",
    "BrokerRegistry",
    "ChangeKind",
    "MembershipChange",
    "MembershipSubscription",
]

logger = logging.getLogger("corral.client.recipes")
BrokerCallback = Callable[["BrokerInfo"], Any]


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A live broker. `epoch` is its registration's create revision; `lease` the lease that keeps it."""

    broker_id: int
    host: str
    port: int
    rack: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)
    epoch: int = 0
    lease: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def encode(self) -> bytes:
        return dumps({"broker_id": self.broker_id, "host": self.host, "port": self.port, "rack": self.rack,
                      "metadata": self.metadata})  # fmt: skip

    @classmethod
    def decode(cls, kv: KeyValue) -> BrokerInfo:
        data = loads(kv.value)
        return cls(int(data["broker_id"]), str(data["host"]), int(data["port"]), data.get("rack"),
                   dict(data.get("metadata") or {}), kv.create_revision, kv.lease)  # fmt: skip


class ChangeKind(enum.Enum):
    SNAPSHOT = "snapshot"  # the live brokers when the subscription started (`broker` is None)
    JOIN = "join"
    UPDATE = "update"  # a live broker rewrote its registration
    LEAVE = "leave"  # deregistered, or its lease expired


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """One change of the live set; `brokers` is the whole live set after it, by broker id."""

    kind: ChangeKind
    revision: int
    broker: BrokerInfo | None
    brokers: tuple[BrokerInfo, ...]


class BrokerAlreadyRegisteredError(MetadataError):
    """The broker id is live already (another process holds it, or a crashed one's lease has not expired)."""

    def __init__(self, broker_id: int, existing: BrokerInfo | None) -> None:
        where = f" by {existing.address} (epoch {existing.epoch}, lease {existing.lease:x})" if existing else ""
        super().__init__(f"broker {broker_id} is already registered{where}; "
                         "a crashed broker's registration disappears within its lease TTL")  # fmt: skip
        self.broker_id = broker_id
        self.existing = existing


def brokers_prefix(root: str) -> str:
    return normalize_root(root) + "cluster/brokers/"


def decode_broker(kv: KeyValue) -> BrokerInfo | None:
    """The broker a registration key holds, or None (logged) for a value that is not one."""
    try:
        return BrokerInfo.decode(kv)
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring a malformed broker registration at %r", kv.key)
        return None


class AsyncBrokerRegistration:
    """A registration kept alive by its lease's task; `deregister()` (or leaving `async with`) revokes it."""

    def __init__(self, info: BrokerInfo, lease: AsyncLease) -> None:
        self.info = info
        self.lease = lease

    @property
    def lost(self) -> bool:
        """True once the lease is gone: the registration has been deleted (or will be within the TTL)."""
        return self.lease.lost

    async def wait_lost(self, timeout: float | None = None) -> bool:
        return await self.lease.wait_lost(timeout)

    async def deregister(self) -> None:
        await self.lease.revoke()

    async def __aenter__(self) -> AsyncBrokerRegistration:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.deregister()


class AsyncMembershipSubscription:
    """A task feeding membership changes to callbacks; `cancel()` (or leaving `async with`) stops it."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    async def cancel(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def __aenter__(self) -> AsyncMembershipSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cancel()


class AsyncBrokerRegistry:
    """Register brokers, list the live ones, and follow joins and leaves."""

    def __init__(self, client: AsyncClient, root: str = DEFAULT_ROOT) -> None:
        self.client = client
        self.prefix = brokers_prefix(root)

    def key(self, broker_id: int) -> str:
        return f"{self.prefix}{broker_id}"

    async def register(
        self,
        broker_id: int,
        host: str,
        port: int,
        rack: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        ttl: int = 10,
        on_lost: Callable[[LeaseLostError], Any] | None = None,
    ) -> AsyncBrokerRegistration:
        """Create the broker's key on a fresh lease kept alive from now on; raises
        `BrokerAlreadyRegisteredError` if the id is live. `on_lost` is called once if the lease is lost."""
        info = BrokerInfo(broker_id, host, port, rack, dict(metadata or {}))
        key = self.key(broker_id)
        lease = await self.client.lease(ttl, on_lost=on_lost)
        try:
            result = await self.client.txn(
                [t.create(key) == 0], [t.put(key, info.encode(), lease=lease.id)], [t.get(key)]
            )
        except BaseException:
            await lease.revoke()
            raise
        if not result.succeeded:
            await lease.revoke()
            existing = result.responses[0]
            assert isinstance(existing, RangeResult)
            raise BrokerAlreadyRegisteredError(broker_id, decode_broker(existing.kvs[0]) if existing.kvs else None)
        registered = BrokerInfo(broker_id, host, port, rack, info.metadata, result.revision, lease.id)
        return AsyncBrokerRegistration(registered, lease)

    async def get(self, broker_id: int) -> BrokerInfo | None:
        kv = (await self.client.get(self.key(broker_id))).first
        return decode_broker(kv) if kv else None

    async def list(self) -> list[BrokerInfo]:
        """The live brokers, by id."""
        result = await self.client.get_prefix(self.prefix)
        return sorted((b for b in map(decode_broker, result.kvs) if b), key=lambda b: b.broker_id)

    async def changes(self) -> AsyncGenerator[MembershipChange, None]:
        """A SNAPSHOT of the live brokers, then one change per join, update and leave, forever.

        Reconnect-safe: the watch resumes without a gap, and after a compaction or an outage the brokers
        are listed again and the difference is reported as LEAVE / JOIN changes.
        """
        live: dict[bytes, BrokerInfo] = {}
        started = False
        async for item in follow_prefix(self.client, self.prefix):
            if isinstance(item, Changes):
                for event in item.events:
                    for change in _apply(live, event.type, event.kv):
                        yield change
                continue
            now = {key: b for key, b in ((kv.key, decode_broker(kv)) for kv in item.kvs.values()) if b}
            if not started:
                started = True
                live = now
                yield MembershipChange(ChangeKind.SNAPSHOT, item.revision, None, _sorted(live))
                continue
            for change in _diff(live, now, item.revision):
                yield change

    async def subscribe(
        self,
        on_join: BrokerCallback | None = None,
        on_leave: BrokerCallback | None = None,
        on_update: BrokerCallback | None = None,
        *,
        include_existing: bool = True,
    ) -> AsyncMembershipSubscription:
        """Call `on_join` / `on_leave` / `on_update` (plain or async) for each change, from a task.

        Returns once the live brokers have been read (and passed to `on_join` when `include_existing`),
        so no later change is missed. A callback that raises is logged and the subscription goes on.
        """
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        handlers = {ChangeKind.JOIN: on_join, ChangeKind.LEAVE: on_leave, ChangeKind.UPDATE: on_update}

        async def run() -> None:
            try:
                async for change in self.changes():
                    if change.kind is ChangeKind.SNAPSHOT:
                        if include_existing and on_join is not None:
                            for broker in change.brokers:
                                await invoke(on_join, broker)
                        ready.set_result(None)
                        continue
                    handler = handlers[change.kind]
                    if handler is not None and change.broker is not None:
                        await invoke(handler, change.broker)
            except asyncio.CancelledError:
                ready.cancel()
                raise
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                raise

        task = asyncio.create_task(run(), name=f"corral-brokers-{self.prefix}")
        try:
            await asyncio.shield(ready)
        except BaseException:
            task.cancel()
            raise
        return AsyncMembershipSubscription(task)


def _sorted(live: Mapping[bytes, BrokerInfo]) -> tuple[BrokerInfo, ...]:
    return tuple(sorted(live.values(), key=lambda b: b.broker_id))


def _apply(live: dict[bytes, BrokerInfo], kind: EventType, kv: KeyValue) -> Iterator[MembershipChange]:
    if kind is EventType.DELETE:
        gone = live.pop(kv.key, None)
        if gone is not None:
            yield MembershipChange(ChangeKind.LEAVE, kv.mod_revision, gone, _sorted(live))
        return
    broker = decode_broker(kv)
    if broker is None:
        return
    before = live.get(kv.key)
    live[kv.key] = broker
    joined = before is None or before.epoch != broker.epoch
    yield MembershipChange(ChangeKind.JOIN if joined else ChangeKind.UPDATE, kv.mod_revision, broker, _sorted(live))


def _diff(live: dict[bytes, BrokerInfo], now: dict[bytes, BrokerInfo], revision: int) -> Iterator[MembershipChange]:
    """What changed between two listings (after a re-list): leaves first, then joins and updates."""
    for key in sorted(live):
        if key not in now or now[key].epoch != live[key].epoch:
            gone = live.pop(key)
            yield MembershipChange(ChangeKind.LEAVE, revision, gone, _sorted(live))
    for key in sorted(now):
        before = live.get(key)
        if before != now[key]:
            live[key] = now[key]
            kind = ChangeKind.JOIN if before is None else ChangeKind.UPDATE
            yield MembershipChange(kind, revision, now[key], _sorted(live))


# -- the blocking twin --------------------------------------------------------------------------------------


class BrokerRegistration:
    """The blocking handle of a registration; its lease is kept alive on the client's portal loop."""

    def __init__(self, registry: BrokerRegistry, inner: AsyncBrokerRegistration) -> None:
        self._portal = registry._portal
        self._inner = inner
        self.info = inner.info

    @property
    def lease_id(self) -> int:
        return self._inner.lease.id

    @property
    def lost(self) -> bool:
        return self._inner.lost

    def wait_lost(self, timeout: float | None = None) -> bool:
        return self._portal.call(self._inner.wait_lost, timeout)

    def deregister(self) -> None:
        self._portal.call(self._inner.deregister)

    def __enter__(self) -> BrokerRegistration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.deregister()


class MembershipSubscription:
    """The blocking handle of a subscription; its callbacks run on the portal's thread."""

    def __init__(self, registry: BrokerRegistry, inner: AsyncMembershipSubscription) -> None:
        self._portal = registry._portal
        self._inner = inner

    def cancel(self) -> None:
        self._portal.call(self._inner.cancel)

    def __enter__(self) -> MembershipSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class BrokerRegistry:
    """The blocking twin of `AsyncBrokerRegistry`, run on `client.portal()`."""

    def __init__(self, client: Client, root: str = DEFAULT_ROOT) -> None:
        self._portal = client.portal()
        self._async = AsyncBrokerRegistry(self._portal.client, root)

    def register(
        self,
        broker_id: int,
        host: str,
        port: int,
        rack: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        ttl: int = 10,
        on_lost: Callable[[LeaseLostError], Any] | None = None,
    ) -> BrokerRegistration:
        inner = self._portal.call(self._async.register, broker_id, host, port, rack, metadata, ttl=ttl, on_lost=on_lost)
        return BrokerRegistration(self, inner)

    def get(self, broker_id: int) -> BrokerInfo | None:
        return self._portal.call(self._async.get, broker_id)

    def list(self) -> list[BrokerInfo]:
        return self._portal.call(self._async.list)

    def changes(self) -> Generator[MembershipChange, None, None]:
        """A blocking iterator of `AsyncBrokerRegistry.changes()`; close it (or break) to stop watching."""
        return iterate(self._portal, self._async.changes())

    def subscribe(
        self,
        on_join: BrokerCallback | None = None,
        on_leave: BrokerCallback | None = None,
        on_update: BrokerCallback | None = None,
        *,
        include_existing: bool = True,
    ) -> MembershipSubscription:
        """As `AsyncBrokerRegistry.subscribe`; the callbacks run on the portal's thread (keep them short)."""
        inner = self._portal.call(
            self._async.subscribe, on_join, on_leave, on_update, include_existing=include_existing
        )
        return MembershipSubscription(self, inner)
