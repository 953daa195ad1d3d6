"""Topic and partition metadata: one key per topic, one key per partition state, changed by CAS.

    topics = AsyncTopics(client)         # topics/{t} and partitions/{t}/{p} under /corral/kafka/cluster/
    await topics.create_topic("orders", replica_assignment={0: [1, 2], 1: [2, 3]})
    record = await topics.partition("orders", 0)            # PartitionRecord: state + mod_revision
    await topics.update_partition("orders", 0, lambda s: replace(s, leader=2, isr=(2,)))  # leader_epoch + 1
    description = await topics.describe("orders")           # the topic and its partitions at one revision

Guarantee: a topic and all its partition states are created in one txn that fails if the topic (or any
leftover partition key) exists: nobody ever sees half a topic. A partition's state (leader, ISR, leader
epoch, controller epoch) is one key updated only by compare-and-swap on its mod revision, so concurrent
controllers cannot lose each other's updates: the loser gets `PartitionConflictError` (or, with a function,
retries on the fresh state). `leader_epoch` grows by exactly one on every leader change (the recipe sets
it) and a write from a controller epoch older than the stored one is refused.

Keys (root default `/corral/kafka/`): `{root}cluster/topics/{topic}` = TopicInfo as JSON (id, replicas,
config); `{root}cluster/partitions/{topic}/{partition}` = PartitionState as JSON.

Limit: one txn holds at most 3,969 partitions (etcd's default --max-txn-ops 128, nested) and the
request must fit --max-request-bytes. The recipe does not elect leaders or watch brokers: it stores
what a controller decides (the initial leader is each partition's first replica).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from corral.client import txn as t
from corral.client._async import AsyncClient
from corral.client._models import KeyValue, RangeResult, TxnResult
from corral.client._sync import Client
from corral.client.recipes._kafka import DEFAULT_ROOT, MetadataError, batched, dumps, loads, normalize_root
from corral.client.recipes.registry import AsyncBrokerRegistry

__all__ = [
    "NO_LEADER",
    "AsyncTopics",
    "PartitionConflictError",
    "PartitionRecord",
    "PartitionState",
    "StaleControllerEpochError",
    "TopicDescription",
    "TopicExistsError",
    "TopicInfo",
    "Topics",
    "UnknownPartitionError",
]

NO_LEADER = -1
_LEGAL = re.compile(r"[a-zA-Z0-9._-]{1,249}")  # Kafka's topic names


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic: its id (new for every creation), replicas per partition (preferred leader first), config."""

    name: str
    topic_id: str
    replicas: tuple[tuple[int, ...], ...]
    config: dict[str, str] = field(default_factory=dict, hash=False)
    revision: int = 0  # the topic key's create revision

    @property
    def partitions(self) -> int:
        return len(self.replicas)

    def encode(self) -> bytes:
        return dumps({"topic_id": self.topic_id, "replicas": self.replicas, "config": self.config})

    @classmethod
    def decode(cls, name: str, kv: KeyValue) -> TopicInfo:
        data = loads(kv.value)
        replicas = tuple(tuple(int(b) for b in r) for r in data["replicas"])
        return cls(name, str(data["topic_id"]), replicas, dict(data.get("config") or {}), kv.create_revision)


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Who leads a partition: `leader` (NO_LEADER for none), the in-sync replicas, and the epochs."""

    leader: int
    isr: tuple[int, ...]
    leader_epoch: int = 0
    controller_epoch: int = 0

    def encode(self) -> bytes:
        return dumps({"leader": self.leader, "isr": self.isr, "leader_epoch": self.leader_epoch,
                      "controller_epoch": self.controller_epoch})  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> PartitionState:
        d = loads(data)
        return cls(int(d["leader"]), tuple(int(b) for b in d["isr"]), int(d["leader_epoch"]),
                   int(d.get("controller_epoch", 0)))  # fmt: skip


@dataclass(frozen=True, slots=True)
class PartitionRecord:
    """A partition state as stored; `mod_revision` is the token to pass as `expected_revision`."""

    topic: str
    partition: int
    state: PartitionState
    mod_revision: int


@dataclass(frozen=True, slots=True)
class TopicDescription:
    """A topic and its partitions, read together at `revision`."""

    topic: TopicInfo
    partitions: tuple[PartitionRecord, ...]
    revision: int


class TopicExistsError(MetadataError):
    def __init__(self, name: str) -> None:
        super().__init__(f"topic {name!r} already exists")
        self.name = name


class UnknownPartitionError(MetadataError):
    """No such topic (`partition` is None) or no such partition of it (Kafka's UNKNOWN_TOPIC_OR_PARTITION)."""

    def __init__(self, topic: str, partition: int | None = None) -> None:
        what = f"unknown topic {topic!r}" if partition is None else f"topic {topic!r} has no partition {partition}"
        super().__init__(what)
        self.topic = topic
        self.partition = partition


class PartitionConflictError(MetadataError):
    """The partition state changed since `expected_revision`; `current` is what is stored now."""

    def __init__(self, topic: str, partition: int, expected_revision: int, current: PartitionRecord | None) -> None:
        now = f"it is at revision {current.mod_revision}: {current.state}" if current else "it no longer exists"
        super().__init__(f"partition {topic}-{partition} changed since revision {expected_revision}: {now}")
        self.topic = topic
        self.partition = partition
        self.expected_revision = expected_revision
        self.current = current


class StaleControllerEpochError(MetadataError):
    """A controller older than the one that last wrote the partition state tried to change it."""

    def __init__(self, topic: str, partition: int, given: int, stored: int) -> None:
        super().__init__(f"partition {topic}-{partition}: controller epoch {given} is older than the stored {stored}")
        self.given = given
        self.stored = stored


def topics_prefix(root: str) -> str:
    return normalize_root(root) + "cluster/topics/"


def partitions_prefix(root: str) -> str:
    return normalize_root(root) + "cluster/partitions/"


def check_name(name: str) -> str:
    if not _LEGAL.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"illegal topic name {name!r}: 1-249 characters of a-z A-Z 0-9 . _ -")
    return name


def next_state(current: PartitionRecord, new: PartitionState) -> PartitionState:
    """`new` with the epochs a controller must write: leader_epoch + 1 exactly when the leader changes."""
    old = current.state
    if new.controller_epoch < old.controller_epoch:
        raise StaleControllerEpochError(current.topic, current.partition, new.controller_epoch, old.controller_epoch)
    if len(set(new.isr)) != len(new.isr):
        raise ValueError(f"duplicate broker in the ISR {new.isr}")
    if new.leader != NO_LEADER and new.leader not in new.isr:
        raise ValueError(f"leader {new.leader} is not in the ISR {new.isr}")
    epoch = old.leader_epoch + 1 if new.leader != old.leader else old.leader_epoch
    return dataclasses.replace(new, leader_epoch=epoch)


class AsyncTopics:
    """Create, read and delete topics; read and CAS partition states."""

    def __init__(self, client: AsyncClient, root: str = DEFAULT_ROOT) -> None:
        self.client = client
        self.root = normalize_root(root)
        self.topics_prefix = topics_prefix(root)
        self.partitions_prefix = partitions_prefix(root)

    def topic_key(self, name: str) -> str:
        return self.topics_prefix + name

    def partition_key(self, topic: str, partition: int) -> str:
        return f"{self.partitions_prefix}{topic}/{partition}"

    async def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replica_assignment: Mapping[int, Sequence[int]] | None = None,
        *,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
        controller_epoch: int = 0,
    ) -> TopicInfo:
        """Create a topic and its partition states in one txn; raises `TopicExistsError` if it exists.

        Give `replica_assignment` ({partition: [broker ids]}, partitions 0..N-1), or `partitions` and
        `replication_factor` to spread replicas round-robin over the live brokers of the registry.
        """
        check_name(name)
        replicas = await self._assignment(partitions, replica_assignment, replication_factor)
        info = TopicInfo(name, uuid.uuid4().hex, replicas, dict(config or {}))
        key = self.topic_key(name)
        states = [PartitionState(r[0] if r else NO_LEADER, r, 0, controller_epoch) for r in replicas]
        puts = [t.put(self.partition_key(name, p), s.encode()) for p, s in enumerate(states)]
        result = await self.client.txn(
            [t.create(key) == 0, t.create(self._partitions_of(name), prefix=True) == 0],
            [t.put(key, info.encode()), *batched(puts, 1)],
        )
        if not result.succeeded:
            raise TopicExistsError(name)
        return dataclasses.replace(info, revision=result.revision)

    async def _assignment(
        self, partitions: int | None, assignment: Mapping[int, Sequence[int]] | None, replication_factor: int
    ) -> tuple[tuple[int, ...], ...]:
        if assignment is not None:
            if sorted(assignment) != list(range(len(assignment))) or not assignment:
                raise ValueError("replica_assignment must name partitions 0..N-1")
            if partitions is not None and partitions != len(assignment):
                raise ValueError(f"partitions={partitions} but the assignment has {len(assignment)}")
            replicas = tuple(tuple(int(b) for b in assignment[p]) for p in range(len(assignment)))
            for p, r in enumerate(replicas):
                if not r or len(set(r)) != len(r):
                    raise ValueError(f"partition {p}: replicas {r} must be distinct and at least one")
            return replicas
        if not partitions or partitions < 1:
            raise ValueError("give partitions >= 1 or a replica_assignment")
        brokers = [b.broker_id for b in await AsyncBrokerRegistry(self.client, self.root).list()]
        if len(brokers) < replication_factor or replication_factor < 1:
            raise ValueError(f"replication factor {replication_factor} but {len(brokers)} live brokers")
        return tuple(tuple(brokers[(p + i) % len(brokers)] for i in range(replication_factor))
                     for p in range(partitions))  # fmt: skip

    def _partitions_of(self, name: str) -> str:
        return f"{self.partitions_prefix}{name}/"

    async def delete_topic(self, name: str) -> None:
        """Delete a topic and its partition states in one txn; raises `UnknownPartitionError` if absent."""
        key = self.topic_key(check_name(name))
        result = await self.client.txn(
            [t.create(key) > 0], [t.delete(key), t.delete(self._partitions_of(name), prefix=True)]
        )
        if not result.succeeded:
            raise UnknownPartitionError(name)

    async def topic(self, name: str) -> TopicInfo:
        kv = (await self.client.get(self.topic_key(check_name(name)))).first
        if kv is None:
            raise UnknownPartitionError(name)
        return TopicInfo.decode(name, kv)

    async def list_topics(self) -> list[TopicInfo]:
        result = await self.client.get_prefix(self.topics_prefix)
        return [TopicInfo.decode(kv.key_str[len(self.topics_prefix) :], kv) for kv in result.kvs]

    async def describe(self, name: str) -> TopicDescription:
        """The topic and all its partition states, from one read (one revision)."""
        result = await self.client.txn(
            [], [t.get(self.topic_key(check_name(name))), t.get(self._partitions_of(name), prefix=True)]
        )
        topic, states = _ranges(result)
        if not topic.kvs:
            raise UnknownPartitionError(name)
        records = sorted((self._record(kv) for kv in states.kvs), key=lambda r: r.partition)
        return TopicDescription(TopicInfo.decode(name, topic.kvs[0]), tuple(records), result.revision)

    async def partition(self, topic: str, partition: int) -> PartitionRecord:
        kv = (await self.client.get(self.partition_key(check_name(topic), partition))).first
        if kv is None:
            raise UnknownPartitionError(topic, partition)
        return self._record(kv)

    async def update_partition(
        self,
        topic: str,
        partition: int,
        update: PartitionState | Callable[[PartitionState], PartitionState],
        expected_revision: int | None = None,
        *,
        attempts: int = 16,
    ) -> PartitionRecord:
        """Replace a partition's state by compare-and-swap on its mod revision; returns the new record.

        With a state, `expected_revision` is required: the write happens only if the stored state is
        still at that revision, else `PartitionConflictError`. With a function of the current state, it
        is retried on the fresh state after a conflict (up to `attempts`), unless `expected_revision`
        pins the starting point. `leader_epoch` is set here (+1 on a leader change); an unchanged state
        is not written.
        """
        if isinstance(update, PartitionState) and expected_revision is None:
            raise ValueError("a new state needs the expected_revision it replaces (or pass a function)")
        key = self.partition_key(check_name(topic), partition)
        current = await self.partition(topic, partition)
        for _ in range(attempts):
            if expected_revision is not None and current.mod_revision != expected_revision:
                raise PartitionConflictError(topic, partition, expected_revision, current)
            new = next_state(current, update if isinstance(update, PartitionState) else update(current.state))
            if new == current.state:
                return current
            result = await self.client.txn(
                [t.mod(key) == current.mod_revision], [t.put(key, new.encode())], [t.get(key)]
            )
            if result.succeeded:
                return PartitionRecord(topic, partition, new, result.revision)
            (now,) = _ranges(result)
            fresh = self._record(now.kvs[0]) if now.kvs else None
            if fresh is None:
                raise UnknownPartitionError(topic, partition)
            if expected_revision is not None:
                raise PartitionConflictError(topic, partition, expected_revision, fresh)
            current = fresh
        raise PartitionConflictError(topic, partition, current.mod_revision, current)

    def _record(self, kv: KeyValue) -> PartitionRecord:
        topic, _, partition = kv.key_str[len(self.partitions_prefix) :].rpartition("/")
        return PartitionRecord(topic, int(partition), PartitionState.decode(kv.value), kv.mod_revision)


def _ranges(result: TxnResult) -> list[RangeResult]:
    ranges = [r for r in result.responses if isinstance(r, RangeResult)]
    assert len(ranges) == len(result.responses)
    return ranges


# -- the blocking twin --------------------------------------------------------------------------------------


class Topics:
    """The blocking twin of `AsyncTopics`, run on `client.portal()`."""

    def __init__(self, client: Client, root: str = DEFAULT_ROOT) -> None:
        self._portal = client.portal()
        self._async = AsyncTopics(self._portal.client, root)

    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replica_assignment: Mapping[int, Sequence[int]] | None = None,
        *,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
        controller_epoch: int = 0,
    ) -> TopicInfo:
        return self._portal.call(self._async.create_topic, name, partitions, replica_assignment,
                                 replication_factor=replication_factor, config=config,
                                 controller_epoch=controller_epoch)  # fmt: skip

    def delete_topic(self, name: str) -> None:
        self._portal.call(self._async.delete_topic, name)

    def topic(self, name: str) -> TopicInfo:
        return self._portal.call(self._async.topic, name)

    def list_topics(self) -> list[TopicInfo]:
        return self._portal.call(self._async.list_topics)

    def describe(self, name: str) -> TopicDescription:
        return self._portal.call(self._async.describe, name)

    def partition(self, topic: str, partition: int) -> PartitionRecord:
        return self._portal.call(self._async.partition, topic, partition)

    def update_partition(
        self,
        topic: str,
        partition: int,
        update: PartitionState | Callable[[PartitionState], PartitionState],
        expected_revision: int | None = None,
        *,
        attempts: int = 16,
    ) -> PartitionRecord:
        """As `AsyncTopics.update_partition`; a function is called on the portal's thread."""
        return self._portal.call(self._async.update_partition, topic, partition, update, expected_revision,
                                 attempts=attempts)  # fmt: skip
