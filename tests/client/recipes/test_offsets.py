"""Consumer-group offsets: generation fencing, atomic batches, never backwards unless reset."""

from __future__ import annotations

import asyncio
import collections
import random

import pytest
from corral.client import AsyncClient, Client, EventType
from corral.client.recipes.offsets import (
    AsyncOffsetStore,
    CommittedOffset,
    OffsetAndMetadata,
    OffsetRewindError,
    OffsetStore,
    StaleGenerationError,
    TopicPartition,
)

from tests.client.recipes._transport import CountingTransport
from tests.support.servers import ServerProcess

A, B, C = TopicPartition("orders", 0), TopicPartition("orders", 1), TopicPartition("audit", 0)


def _offsets(found: dict[TopicPartition, CommittedOffset]) -> dict[TopicPartition, int]:
    return {tp: committed.offset for tp, committed in found.items()}


def test_commit_and_fetch(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        store = OffsetStore(client, root=prefix)
        assert store.generation("g") == 0 and store.fetch_all("g") == {}
        generation = store.new_generation("g")
        assert generation == 1 and store.generation("g") == 1
        revision = store.commit("g", generation, {A: 10, B: OffsetAndMetadata(20, "m", leader_epoch=3), C: 0})
        found = store.fetch("g", [A, B, TopicPartition("orders", 9)])
        assert _offsets(found) == {A: 10, B: 20}
        assert found[B] == CommittedOffset(20, "m", 3, generation, revision)
        assert _offsets(store.fetch_all("g")) == {A: 10, B: 20, C: 0}
        assert store.fetch_all("other") == {}
        # group ids are opaque: one with a slash is its own group
        store.commit("g/offsets", 0, {A: 99})
        assert _offsets(store.fetch_all("g")) == {A: 10, B: 20, C: 0}
        assert _offsets(store.fetch_all("g/offsets")) == {A: 99}


def test_a_commit_from_an_old_generation_is_refused(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        store = OffsetStore(client, root=prefix)
        old = store.new_generation("g")
        store.commit("g", old, {A: 5})
        new = store.new_generation("g")  # a rebalance: the old member is now a zombie
        with pytest.raises(StaleGenerationError) as stale:
            store.commit("g", old, {A: 6, B: 6})
        assert (stale.value.given, stale.value.current) == (old, new)
        assert _offsets(store.fetch_all("g")) == {A: 5}  # nothing of the batch was written
        with pytest.raises(StaleGenerationError):
            store.commit("g", old, {A: 7}, allow_rewind=True)
        with pytest.raises(StaleGenerationError):
            store.commit("g", 0, {A: 7})  # "no generation" is stale too once the group has one
        store.commit("g", new, {A: 6, B: 6})
        assert _offsets(store.fetch_all("g")) == {A: 6, B: 6}


def test_batches_are_atomic_and_never_go_backwards(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        store = OffsetStore(client, root=prefix)
        generation = store.new_generation("g")
        store.commit("g", generation, {A: 10, B: 10})
        with pytest.raises(OffsetRewindError) as rewind:
            store.commit("g", generation, {A: 20, B: 5, C: 1})
        assert rewind.value.rewinds == {B: (10, 5)}
        assert _offsets(store.fetch_all("g")) == {A: 10, B: 10}  # A did not move either
        store.commit("g", generation, {A: 10, B: 11})  # an equal offset is a retried commit: fine
        # another store (another process) with a stale view is held back by the mod-revision compares
        other = OffsetStore(client, root=prefix)
        other.commit("g", generation, {B: 30})
        with pytest.raises(OffsetRewindError):
            store.commit("g", generation, {B: 12})  # its cache said 11; the txn failed, it re-read 30
        assert _offsets(store.fetch("g", [B])) == {B: 30}


def test_rewind_only_when_asked(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        store = OffsetStore(client, root=prefix)
        generation = store.new_generation("g")
        store.commit("g", generation, {A: 100, B: 100})
        store.commit("g", generation, {A: 50}, allow_rewind=True)  # Kafka's own rule
        assert _offsets(store.fetch_all("g")) == {A: 50, B: 100}
        admin = OffsetStore(client, root=prefix)
        admin.reset("g", {B: 0})
        assert store.fetch("g", [B])[B].generation == -1
        store.commit("g", generation, {B: 10})  # above the reset: accepted
        with pytest.raises(OffsetRewindError):
            store.commit("g", generation, {B: 9})
        with pytest.raises(ValueError):
            store.commit("g", generation, {TopicPartition("t", p): 1 for p in range(200)})
        wide = {TopicPartition("t", p): 1 for p in range(200)}
        store.commit("g", generation, wide, allow_rewind=True)
        assert len(store.fetch("g", wide)) == 200


def test_concurrent_committers_never_move_an_offset_backwards(server: ServerProcess, prefix: str) -> None:
    """Four committers (own caches, own connections) race on two partitions; the watched history of
    each partition's committed offset only ever grows, and the highest accepted commit is what stays."""

    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            generation = await AsyncOffsetStore(client, root=prefix).new_generation("g")
            accepted: dict[TopicPartition, list[int]] = collections.defaultdict(list)
            rng = random.Random(7)

            async def committer() -> None:
                async with AsyncClient(server.url) as own:
                    store = AsyncOffsetStore(own, root=prefix)
                    for _ in range(15):
                        batch = {tp: rng.randrange(0, 200) for tp in (A, B)}
                        try:
                            await store.commit("g", generation, batch)
                        except OffsetRewindError:
                            continue
                        for tp, offset in batch.items():
                            accepted[tp].append(offset)

            store = AsyncOffsetStore(client, root=prefix)
            history: dict[bytes, list[int]] = collections.defaultdict(list)
            start = (await client.get(prefix + "x")).header.revision + 1
            await asyncio.gather(*(committer() for _ in range(4)))
            expected = sum(len(offsets) for offsets in accepted.values())
            async with client.watch_prefix(store.group_prefix("g") + "offsets/", start_revision=start) as watch:
                async for event in watch:
                    assert event.type is EventType.PUT
                    history[event.key].append(CommittedOffset.decode(event.kv).offset)
                    expected -= 1
                    if expected == 0:
                        break
            final = _offsets(await store.fetch_all("g"))
            for tp in (A, B):
                values = history[store.offset_key("g", tp).encode()]
                assert values == sorted(values) and values, values
                assert final[tp] == max(accepted[tp]) == values[-1]

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_steady_commit_is_one_round_trip(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        counting = CountingTransport()
        async with AsyncClient(server.url, transport=counting) as client:
            store = AsyncOffsetStore(client, root=prefix)
            generation = await store.new_generation("g")
            await store.fetch("g", [A, B])  # what a consumer does on assignment
            before = counting.count
            for offset in range(1, 6):
                await store.commit("g", generation, {A: offset, B: offset})
            assert counting.count - before == 5

    asyncio.run(asyncio.wait_for(scenario(), 20))
