"""Partition router: a local, watched cache of (topic, partition) -> leader broker, answered without a round trip.

    async with AsyncPartitionRouter(client) as router:      # follows /corral/kafka/cluster/
        route = router.route("orders", 0)                   # Route: leader BrokerInfo, leader_epoch (no I/O)
        ...                                                 # the broker says "not leader"? then:
        await router.refresh()                              # re-read everything, and route again
        await router.wait_for("orders", 0, lambda r: r.broker.broker_id == 2, timeout=5)

Guarantee: the cache is the cluster metadata (brokers, topics, partition states) as of one revision,
`revision`, and only moves forward: it is listed at revision R, then every change from R + 1 is applied
from a watch that resumes without a gap; after a compaction or a long outage it is listed again. A
partition whose leader is not a registered (live) broker routes to `NoLeaderError`, as Kafka's metadata
says LEADER_NOT_AVAILABLE.

Keys (root default `/corral/kafka/`): it reads and watches `{root}cluster/`, where the registry and
topics recipes keep brokers, topics and partition states.

Limit: the cache lags the store by the watch's delivery time, and while the cluster is unreachable it
answers from the last state it saw: a route can be stale, so a client must treat the broker's own
"not the leader" answer as the truth, `refresh()` and retry (compare `leader_epoch` to reject older
answers). `route()` reads plain dicts and may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from corral.client._async import AsyncClient
from corral.client._models import EventType, KeyValue
from corral.client._sync import Client
from corral.client.recipes._kafka import (
    DEFAULT_ROOT,
    Changes,
    MetadataError,
    Snapshot,
    TopicPartition,
    follow_prefix,
    normalize_root,
)
from corral.client.recipes.registry import BrokerInfo, decode_broker
from corral.client.recipes.topics import NO_LEADER, PartitionState, TopicInfo, UnknownPartitionError

__all__ = ["AsyncPartitionRouter", "NoLeaderError", "PartitionRouter", "Route", "UnknownPartitionError"]

logger = logging.getLogger("corral.client.recipes")


@dataclass(frozen=True, slots=True)
class Route:
    """Where a partition's leader is: the broker, and the leader epoch to send along with requests."""

    topic: str
    partition: int
    broker: BrokerInfo
    leader_epoch: int

    @property
    def address(self) -> str:
        return self.broker.address


class NoLeaderError(MetadataError):
    """The partition exists but has no leader that is a live broker now (Kafka's LEADER_NOT_AVAILABLE)."""

    def __init__(self, topic: str, partition: int, reason: str) -> None:
        super().__init__(f"partition {topic}-{partition} has no leader: {reason}")
        self.topic = topic
        self.partition = partition
        self.reason = reason


class _Cache:
    """Brokers, topics and partition states decoded from keys under `{root}cluster/`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.encode()
        self.brokers: dict[int, BrokerInfo] = {}
        self.topics: dict[str, TopicInfo] = {}
        self.states: dict[TopicPartition, PartitionState] = {}

    def put(self, kv: KeyValue) -> None:
        kind, name = self._split(kv.key)
        try:
            if kind == "brokers":
                broker = decode_broker(kv)
                if broker is not None:
                    self.brokers[broker.broker_id] = broker
            elif kind == "topics":
                self.topics[name] = TopicInfo.decode(name, kv)
            elif kind == "partitions":
                self.states[_partition(name)] = PartitionState.decode(kv.value)
        except (ValueError, KeyError, TypeError):
            logger.warning("router: ignoring a malformed value at %r", kv.key)

    def delete(self, key: bytes) -> None:
        kind, name = self._split(key)
        with contextlib.suppress(ValueError, KeyError):
            if kind == "brokers":
                del self.brokers[int(name)]
            elif kind == "topics":
                del self.topics[name]
            elif kind == "partitions":
                del self.states[_partition(name)]

    def _split(self, key: bytes) -> tuple[str, str]:
        kind, _, name = key[len(self.prefix) :].decode(errors="replace").partition("/")
        return kind, name


def _partition(name: str) -> TopicPartition:
    topic, _, partition = name.rpartition("/")
    return TopicPartition(topic, int(partition))


class AsyncPartitionRouter:
    """Routes partitions to their leaders from a cache kept current by one prefix watch."""

    def __init__(self, client: AsyncClient, root: str = DEFAULT_ROOT) -> None:
        self.client = client
        self.prefix = normalize_root(root) + "cluster/"
        self.revision = 0  # the store revision the cache reflects
        self._cache = _Cache(self.prefix)
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        """Read the metadata (raising if the cluster cannot be reached) and follow it from a task."""
        if self._task is not None:
            return
        items = follow_prefix(self.client, self.prefix)
        self._apply(await anext(items))
        self._task = asyncio.create_task(self._follow(items), name=f"corral-router-{self.prefix}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> AsyncPartitionRouter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def route(self, topic: str, partition: int) -> Route:
        """The partition's leader from the cache, with no I/O; raises `UnknownPartitionError` or `NoLeaderError`."""
        self._check_running()
        state = self._cache.states.get(TopicPartition(topic, partition))
        if state is None:
            raise UnknownPartitionError(topic, partition if topic in self._cache.topics else None)
        if state.leader == NO_LEADER:
            raise NoLeaderError(topic, partition, "none elected")
        broker = self._cache.brokers.get(state.leader)
        if broker is None:
            raise NoLeaderError(topic, partition, f"broker {state.leader} is not registered")
        return Route(topic, partition, broker, state.leader_epoch)

    def topics(self) -> list[TopicInfo]:
        """The topics in the cache, by name."""
        return sorted(self._cache.topics.values(), key=lambda info: info.name)

    def brokers(self) -> list[BrokerInfo]:
        """The live brokers in the cache, by id."""
        return sorted(self._cache.brokers.values(), key=lambda b: b.broker_id)

    async def refresh(self) -> None:
        """Re-read all the metadata now (after a broker said "not leader"); the watch goes on from there."""
        result = await self.client.get_prefix(self.prefix)
        self._apply(Snapshot(result.header.revision, {kv.key: kv for kv in result.kvs}))

    async def wait_for(
        self, topic: str, partition: int, predicate: Callable[[Route], bool] | None = None, timeout: float = 10.0
    ) -> Route:
        """The partition's route once it has a leader (and `predicate` holds); `TimeoutError` after `timeout`."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                with contextlib.suppress(UnknownPartitionError, NoLeaderError):
                    route = self.route(topic, partition)
                    if predicate is None or predicate(route):
                        return route
                await changed.wait()

    def _check_running(self) -> None:
        task = self._task
        if task is None:
            raise RuntimeError("the router is not started (use start() or a with block)")
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise MetadataError(f"the router stopped following the metadata: {task.exception()!r}")

    async def _follow(self, items: AsyncIterator[Snapshot | Changes]) -> None:
        try:
            async for item in items:
                self._apply(item)
        except Exception:
            logger.exception("router for %s stopped", self.prefix)
            raise

    def _apply(self, item: Snapshot | Changes) -> None:
        """Apply a listing or watched changes, skipping anything a `refresh()` already got past."""
        if item.revision <= self.revision:
            return
        if isinstance(item, Snapshot):
            cache = _Cache(self.prefix)
            for kv in item.kvs.values():
                cache.put(kv)
            self._cache = cache  # one reference swap: a reader on another thread sees old or new
        else:
            for event in item.events:
                if event.revision <= self.revision:
                    continue
                if event.type is EventType.DELETE:
                    self._cache.delete(event.key)
                else:
                    self._cache.put(event.kv)
        self.revision = item.revision
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


# -- the blocking twin --------------------------------------------------------------------------------------


class PartitionRouter:
    """The blocking twin of `AsyncPartitionRouter`: the watch runs on `client.portal()`, `route()` on the caller."""

    def __init__(self, client: Client, root: str = DEFAULT_ROOT) -> None:
        self._portal = client.portal()
        self._async = AsyncPartitionRouter(self._portal.client, root)

    @property
    def revision(self) -> int:
        return self._async.revision

    def start(self) -> None:
        self._portal.call(self._async.start)

    def close(self) -> None:
        self._portal.call(self._async.close)

    def __enter__(self) -> PartitionRouter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def route(self, topic: str, partition: int) -> Route:
        return self._async.route(topic, partition)

    def topics(self) -> list[TopicInfo]:
        return self._async.topics()

    def brokers(self) -> list[BrokerInfo]:
        return self._async.brokers()

    def refresh(self) -> None:
        self._portal.call(self._async.refresh)

    def wait_for(
        self, topic: str, partition: int, predicate: Callable[[Route], bool] | None = None, timeout: float = 10.0
    ) -> Route:
        """As `AsyncPartitionRouter.wait_for`; `predicate` is called on the portal's thread."""
        return self._portal.call(self._async.wait_for, topic, partition, predicate, timeout)
