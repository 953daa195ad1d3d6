"""A consumer group member: fetches from the partition leaders, commits all its offsets in one txn.

    consumer = GroupConsumer(client, router, brokers, "billing", partitions)
    await consumer.join()                  # a new group generation; positions from the committed offsets
    await consumer.run(stop)               # fetch, then commit every partition's position in one txn

The commit goes through `AsyncOffsetStore.commit`, fenced by the generation `join()` took and refusing to
move any offset backwards, so a commit is all partitions or none. A commit that fails while Corral elects a
leader is simply made again on the next round (with the newer positions).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from corral.client import AsyncClient, CorralError
from corral.client.recipes import AsyncOffsetStore, AsyncPartitionRouter, NoLeaderError, TopicPartition

from examples.kafka_mini.protocol import ROOT, TRANSIENT, BrokerClient, BrokerError

__all__ = ["Commit", "GroupConsumer"]


@dataclass(frozen=True, slots=True)
class Commit:
    """A successful commit: when (time.monotonic()), its store revision, and every partition's offset."""

    at: float
    revision: int
    offsets: dict[TopicPartition, int]


class GroupConsumer:
    """The one member of `group`, owning every partition it is given."""

    def __init__(
        self,
        client: AsyncClient,
        router: AsyncPartitionRouter,
        brokers: BrokerClient,
        group: str,
        partitions: Iterable[TopicPartition],
    ) -> None:
        self.router = router
        self.brokers = brokers
        self.group = group
        self.store = AsyncOffsetStore(client, ROOT)
        self.partitions = sorted(partitions)
        self.generation = 0
        self.positions: dict[TopicPartition, int] = {}
        self.consumed: dict[TopicPartition, list[tuple[int, str]]] = {tp: [] for tp in self.partitions}
        self.commits: list[Commit] = []
        self.commit_errors: list[str] = []

    async def join(self) -> None:
        """Start a new generation (fencing older members) and resume from the committed offsets."""
        self.generation = await self.store.new_generation(self.group)
        committed = await self.store.fetch(self.group, self.partitions)
        self.positions = {tp: committed[tp].offset if tp in committed else 0 for tp in self.partitions}

    async def poll(self) -> int:
        """Fetch once from every partition's leader; returns how many records arrived."""
        counts = await asyncio.gather(*(self._poll(tp) for tp in self.partitions))
        return sum(counts)

    async def _poll(self, tp: TopicPartition) -> int:
        try:
            route = self.router.route(tp.topic, tp.partition)
            result = await self.brokers.fetch(route.address, tp, self.positions[tp])
        except NoLeaderError:
            return 0
        except (BrokerError, httpx.TransportError):
            with contextlib.suppress(CorralError, TimeoutError):
                async with asyncio.timeout(0.5):
                    await self.router.refresh()
            return 0
        for offset, _ in result.records:
            if offset != self.positions[tp]:
                raise AssertionError(f"{tp}: expected offset {self.positions[tp]}, the leader sent {offset}")
            self.positions[tp] = offset + 1
        self.consumed[tp].extend(result.records)
        return len(result.records)

    async def commit(self) -> Commit:
        """Commit every partition's position in one txn (fenced by the generation, never backwards)."""
        offsets = dict(self.positions)
        revision = await self.store.commit(self.group, self.generation, offsets)
        commit = Commit(time.monotonic(), revision, offsets)
        self.commits.append(commit)
        return commit

    async def run(self, stop: asyncio.Event, interval: float = 0.1) -> None:
        """Poll and commit until `stop` is set; a commit that fails transiently is retried next round."""
        committed: dict[TopicPartition, int] = {}
        while not stop.is_set():
            await self.poll()
            if self.positions != committed:
                try:
                    committed = (await self.commit()).offsets
                except TRANSIENT as exc:
                    self.commit_errors.append(repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def drain(self, ends: dict[TopicPartition, int], timeout: float) -> None:
        """Consume until every partition's position reaches `ends`, then commit; `TimeoutError` after `timeout`.
        Call it once `run` has returned: a member polls each partition from one place at a time."""
        async with asyncio.timeout(timeout):
            while any(self.positions[tp] < end for tp, end in ends.items()):
                if not await self.poll():
                    await asyncio.sleep(0.05)
            while True:
                try:
                    await self.commit()
                    return
                except TRANSIENT as exc:
                    self.commit_errors.append(repr(exc))
                    await asyncio.sleep(0.1)
