"""What the Kafka-metadata recipes share: the key root, JSON values, errors, and a prefix kept in sync.

Layout under the root (default `/corral/kafka/`):

    cluster/brokers/{id}                       BrokerInfo, attached to the broker's lease   (registry)
    cluster/topics/{topic}                     TopicInfo: id, replica assignment, config    (topics)
    cluster/partitions/{topic}/{partition}     PartitionState: leader, isr, epochs          (topics)
    consumers/{group}/generation               the group generation, a JSON integer         (offsets)
    consumers/{group}/offsets/{topic}/{p}      a committed offset                           (offsets)

Everything a producer or consumer needs to route (brokers, topics, partition states) lives under
`cluster/`, so one watch keeps a router current; offset commits, the busiest writes, stay outside it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from corral.client import txn as t
from corral.client._async import AsyncClient
from corral.client._errors import CompactedError, CorralError, ServerError, TransportError, WatchCanceled
from corral.client._models import Event, KeyValue
from corral.client._portal import Portal

__all__ = [
    "DEFAULT_ROOT",
    "MAX_TXN_OPS",
    "Changes",
    "MetadataError",
    "Snapshot",
    "TopicPartition",
    "batched",
    "follow_prefix",
    "invoke",
    "iterate",
    "normalize_root",
]

T = TypeVar("T")
logger = logging.getLogger("corral.client.recipes")

DEFAULT_ROOT = "/corral/kafka/"
MAX_TXN_OPS = 128  # etcd's and Corral's default --max-txn-ops
_CHUNK = 63  # ops per nested txn: 63 of them at the top level leave each one a budget of 128 - 64 = 64


class MetadataError(CorralError):
    """Base of the Kafka-metadata recipes' errors."""


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    """A partition of a topic; hashable, so it keys offset maps and route caches."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


def normalize_root(root: str) -> str:
    if not root:
        raise ValueError("the key root must not be empty")
    return root if root.endswith("/") else root + "/"


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def batched(ops: Sequence[t.Op], others: int = 0) -> list[t.Op]:
    """`ops` as one branch of a txn: flat when they fit beside `others` top-level ops, else nested txns.

    etcd (and Corral) bound each level of a txn to 128 ops and give a nested txn the budget its parent
    leaves, so 63 nested txns of 63 ops carry 3,969 operations in one atomic request.
    """
    if len(ops) + others <= MAX_TXN_OPS:
        return list(ops)
    chunks = math.ceil(len(ops) / _CHUNK)
    if chunks + others > MAX_TXN_OPS - _CHUNK:
        raise ValueError(f"{len(ops)} operations do not fit in one transaction (at most {_CHUNK * _CHUNK})")
    return [t.txn(success=ops[i : i + _CHUNK]) for i in range(0, len(ops), _CHUNK)]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every key under the prefix as of `revision` (the first item, and again after a re-list)."""

    revision: int
    kvs: dict[bytes, KeyValue]


@dataclass(frozen=True, slots=True)
class Changes:
    """The events of one watch message, in revision order; `revision` is the last one's."""

    revision: int
    events: list[Event]


async def follow_prefix(
    client: AsyncClient, prefix: str, *, max_pause: float = 2.0
) -> AsyncGenerator[Snapshot | Changes, None]:
    """A prefix's contents, then every change, forever: list at revision R, watch from R + 1.

    The watch resumes on its own across server failures without a gap; when its history was compacted
    away (or it was cancelled, or no endpoint answered for a while) the prefix is listed again and a
    fresh `Snapshot` follows, so a consumer that applies snapshots and changes in order never misses a
    state. Only the first list raises (the caller learns the server is unreachable); later failures retry.
    """
    result = await client.get_prefix(prefix)
    pause = 0.05
    while True:
        revision = result.header.revision
        yield Snapshot(revision, {kv.key: kv for kv in result.kvs})
        try:
            async with client.watch(prefix, prefix=True, start_revision=revision + 1) as watch:
                async for response in watch.responses():
                    pause = 0.05
                    if response.events:
                        yield Changes(response.events[-1].revision, list(response.events))
        except CompactedError as exc:
            logger.info("watch of %s compacted at %d: listing again", prefix, exc.compact_revision)
        except (TransportError, ServerError, WatchCanceled) as exc:
            logger.warning("watch of %s failed (%s): listing again", prefix, exc)
        while True:
            try:
                result = await client.get_prefix(prefix)
                break
            except (TransportError, ServerError) as exc:
                logger.warning("listing %s failed (%s): retrying in %.2f s", prefix, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, max_pause)


async def invoke(callback: Callable[..., Any], *args: Any) -> None:
    """Call a user's callback (plain or async); its exception is logged, never raised into a watch task."""
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("callback %r failed", callback)


def iterate(portal: Portal, iterator: AsyncIterator[T]) -> Generator[T, None, None]:
    """A blocking iterator over an async one on the portal's loop; closing it (or `break`) closes the async one."""
    yield from portal.iterate(iterator)
