"""Partition router: routes from a watched cache, no round trip per route, follows leader changes."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from corral.client import AsyncClient, Client, RetryPolicy, TransportError
from corral.client.recipes.registry import AsyncBrokerRegistry, BrokerRegistry
from corral.client.recipes.router import AsyncPartitionRouter, NoLeaderError, PartitionRouter, Route
from corral.client.recipes.topics import NO_LEADER, AsyncTopics, PartitionState, Topics, UnknownPartitionError

from tests.client.recipes._transport import CountingTransport
from tests.support.servers import ServerProcess, corral_process


def test_route_follows_a_leader_change_without_round_trips(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        counting = CountingTransport()
        async with AsyncClient(server.url) as admin, AsyncClient(server.url, transport=counting) as client:
            registry = AsyncBrokerRegistry(admin, root=prefix)
            one, two = await registry.register(1, "h1", 9001), await registry.register(2, "h2", 9002)
            topics = AsyncTopics(admin, root=prefix)
            await topics.create_topic("orders", replica_assignment={0: [1, 2], 1: [2, 1]})
            async with AsyncPartitionRouter(client, root=prefix) as router:
                first = router.route("orders", 0)
                assert first == Route("orders", 0, one.info, 0) and first.address == "h1:9001"
                assert router.route("orders", 1).broker == two.info
                record = await topics.partition("orders", 0)
                moved = await topics.update_partition("orders", 0, replace(record.state, leader=2), record.mod_revision)
                route = await router.wait_for("orders", 0, lambda r: r.broker.broker_id == 2, timeout=5)
                assert route.leader_epoch == 1 and router.revision >= moved.mod_revision
                before = counting.count
                for _ in range(1000):
                    assert router.route("orders", 0).address == "h2:9002"
                assert counting.count == before  # answered from the cache
                assert counting.paths["/v3/watch"] == 1  # one watch kept the cache current
                assert [b.broker_id for b in router.brokers()] == [1, 2]
                assert [t.name for t in router.topics()] == ["orders"]
            await one.deregister()
            await two.deregister()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_no_leader_and_unknown_partitions(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        topics = Topics(client, root=prefix)
        topics.create_topic("t", replica_assignment={0: [1], 1: [2]})
        with PartitionRouter(client, root=prefix) as router:
            with pytest.raises(UnknownPartitionError) as unknown_topic:
                router.route("nope", 0)
            assert unknown_topic.value.partition is None
            with pytest.raises(UnknownPartitionError) as unknown_partition:
                router.route("t", 7)
            assert unknown_partition.value.partition == 7
            with pytest.raises(NoLeaderError, match="broker 1 is not registered"):
                router.route("t", 0)  # leader 1 has not registered (or has died)
            registry = BrokerRegistry(client, root=prefix)
            with registry.register(1, "h1", 1) as one:
                assert router.wait_for("t", 0, timeout=5).broker == one.info
                record = topics.partition("t", 1)
                topics.update_partition("t", 1, PartitionState(NO_LEADER, ()), record.mod_revision)
                router.refresh()  # a re-read: current at once, no waiting for the watch
                with pytest.raises(NoLeaderError, match="none elected"):
                    router.route("t", 1)
            router.refresh()  # (else the watch may not have delivered the leave yet)
            with pytest.raises(TimeoutError):
                router.wait_for("t", 0, timeout=0.5)  # leader 1 left: no route until it is back
            routed: list[Route] = []  # route() may be called from any thread
            reader = threading.Thread(target=lambda: routed.append(router.wait_for("t", 0, timeout=5)))
            reader.start()
            with registry.register(1, "h1-again", 1):
                reader.join(10)
            assert routed and routed[0].broker.host == "h1-again"


def test_topic_lifecycle_reaches_the_cache(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            registry = AsyncBrokerRegistry(client, root=prefix)
            topics = AsyncTopics(client, root=prefix)
            async with await registry.register(3, "h3", 3), AsyncPartitionRouter(client, root=prefix) as router:
                await topics.create_topic("late", replica_assignment={0: [3]})
                assert (await router.wait_for("late", 0, timeout=5)).broker.broker_id == 3
                await topics.delete_topic("late")
                await client.compact((await client.put(prefix + "x", "1")).revision)  # and compaction is harmless
                await router.refresh()
                with pytest.raises(UnknownPartitionError):
                    router.route("late", 0)

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_route_answers_from_cache_while_the_server_is_down(tmp_path: Path, prefix: str) -> None:
    """Stop the only server: routes still come from the cache; after a restart the watch resumes."""
    node = corral_process(tmp_path / "data")
    node.start()
    try:
        with Client(node.url, retry=RetryPolicy(deadline=1.0)) as client:
            registry = BrokerRegistry(client, root=prefix)
            topics = Topics(client, root=prefix)
            registration = registry.register(1, "h1", 1, ttl=60)
            registry.register(2, "h2", 2, ttl=60)
            topics.create_topic("t", replica_assignment={0: [1, 2]})
            with PartitionRouter(client, root=prefix) as router:
                assert router.route("t", 0).broker == registration.info
                node.kill()
                assert router.route("t", 0).broker == registration.info  # no server needed
                with pytest.raises(TransportError):
                    router.refresh()
                node.start()
                record = topics.partition("t", 0)
                topics.update_partition("t", 0, replace(record.state, leader=2), record.mod_revision)
                assert router.wait_for("t", 0, lambda r: r.broker.broker_id == 2, timeout=15).leader_epoch == 1
    finally:
        node.kill()
