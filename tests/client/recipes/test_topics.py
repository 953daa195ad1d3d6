"""Topics and partition states: atomic creation, conflicts, CAS updates, leader epochs."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from corral.client import AsyncClient, Client
from corral.client.recipes.registry import BrokerRegistry
from corral.client.recipes.topics import (
    NO_LEADER,
    AsyncTopics,
    PartitionConflictError,
    PartitionState,
    StaleControllerEpochError,
    TopicExistsError,
    Topics,
    UnknownPartitionError,
)

from tests.support.servers import ServerProcess


def test_create_describe_list_delete(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        topics = Topics(client, root=prefix)
        info = topics.create_topic("orders", replica_assignment={0: [1, 2], 1: [2, 3]}, config={"retention.ms": "1"})
        assert info.partitions == 2 and info.replicas == ((1, 2), (2, 3)) and len(info.topic_id) == 32
        description = topics.describe("orders")
        assert description.topic == info and description.revision >= info.revision
        assert [(r.partition, r.state) for r in description.partitions] == [
            (0, PartitionState(1, (1, 2), 0, 0)), (1, PartitionState(2, (2, 3), 0, 0))]  # fmt: skip
        assert all(r.mod_revision == info.revision for r in description.partitions)  # one txn, one revision
        assert topics.topic("orders") == info and topics.partition("orders", 1) == description.partitions[1]
        topics.create_topic("audit", partitions=1, replica_assignment={0: [3]})
        assert [t.name for t in topics.list_topics()] == ["audit", "orders"]
        topics.delete_topic("orders")
        assert [t.name for t in topics.list_topics()] == ["audit"]
        with pytest.raises(UnknownPartitionError):
            topics.describe("orders")
        with pytest.raises(UnknownPartitionError) as unknown:
            topics.partition("orders", 0)
        assert unknown.value.partition == 0
        with pytest.raises(UnknownPartitionError):
            topics.delete_topic("orders")
        recreated = topics.create_topic("orders", replica_assignment={0: [1]})
        assert recreated.topic_id != info.topic_id and topics.describe("orders").partitions[0].partition == 0


def test_creation_is_atomic_and_conflicts(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        topics = Topics(client, root=prefix)
        first = topics.create_topic("t", replica_assignment={0: [1], 1: [2]})
        with pytest.raises(TopicExistsError):
            topics.create_topic("t", replica_assignment={0: [5], 1: [5], 2: [5]})
        description = topics.describe("t")
        assert description.topic == first and [r.state.leader for r in description.partitions] == [1, 2]
        # a leftover partition key (a half-deleted topic) also blocks creation, and nothing is written
        client.put(prefix + "cluster/partitions/ghost/0", '{"leader":1,"isr":[1],"leader_epoch":3}')
        with pytest.raises(TopicExistsError):
            topics.create_topic("ghost", replica_assignment={0: [1]})
        assert client.get(prefix + "cluster/topics/ghost").count == 0
        with pytest.raises(ValueError):
            topics.create_topic("bad/name", replica_assignment={0: [1]})
        with pytest.raises(ValueError):
            topics.create_topic("gaps", replica_assignment={0: [1], 2: [1]})
        with pytest.raises(ValueError):
            topics.create_topic("dupes", replica_assignment={0: [1, 1]})


def test_creation_from_live_brokers(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        registry = BrokerRegistry(client, root=prefix)
        held = [registry.register(i, f"h{i}", 9000 + i) for i in (1, 2, 3)]
        topics = Topics(client, root=prefix)
        info = topics.create_topic("spread", partitions=4, replication_factor=2)
        assert info.replicas == ((1, 2), (2, 3), (3, 1), (1, 2))
        with pytest.raises(ValueError):
            topics.create_topic("too-wide", partitions=1, replication_factor=4)
        for registration in held:
            registration.deregister()


def test_a_big_topic_is_still_one_transaction(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            topics = AsyncTopics(client, root=prefix)
            info = await topics.create_topic("wide", replica_assignment={p: [p % 3 + 1] for p in range(300)})
            description = await topics.describe("wide")
            assert len(description.partitions) == 300
            assert {r.mod_revision for r in description.partitions} == {info.revision}

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_cas_conflict_and_leader_epochs(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        topics = Topics(client, root=prefix)
        topics.create_topic("p", replica_assignment={0: [1, 2, 3]}, controller_epoch=1)
        start = topics.partition("p", 0)
        assert start.state == PartitionState(1, (1, 2, 3), 0, 1)
        shrunk = topics.update_partition("p", 0, replace(start.state, isr=(1, 2)), start.mod_revision)
        assert shrunk.state == PartitionState(1, (1, 2), 0, 1) and shrunk.mod_revision > start.mod_revision
        with pytest.raises(PartitionConflictError) as conflict:  # a second controller with the old revision
            topics.update_partition("p", 0, PartitionState(3, (3,), 0, 1), start.mod_revision)
        assert conflict.value.current == shrunk and conflict.value.expected_revision == start.mod_revision
        assert topics.partition("p", 0) == shrunk
        moved = topics.update_partition("p", 0, PartitionState(2, (2,), 99, 1), shrunk.mod_revision)
        assert moved.state.leader_epoch == 1  # set by the recipe, whatever the caller said
        offline = topics.update_partition("p", 0, lambda s: replace(s, leader=NO_LEADER, isr=()))
        assert offline.state.leader_epoch == 2
        same = topics.update_partition("p", 0, lambda s: s)
        assert same == offline  # nothing to write
        with pytest.raises(StaleControllerEpochError):
            topics.update_partition("p", 0, lambda s: PartitionState(1, (1,), 0, controller_epoch=0))
        with pytest.raises(ValueError):
            topics.update_partition("p", 0, lambda s: PartitionState(1, (2,), 0, 1))  # leader outside the ISR
        with pytest.raises(ValueError):
            topics.update_partition("p", 0, PartitionState(1, (1,), 0, 1))  # a state needs its revision
        with pytest.raises(UnknownPartitionError):
            topics.update_partition("p", 5, lambda s: s)


def test_concurrent_function_updates_lose_nothing(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            topics = AsyncTopics(client, root=prefix)
            await topics.create_topic("race", replica_assignment={0: [1, 2]})

            def flip(state: PartitionState) -> PartitionState:
                leader = 2 if state.leader == 1 else 1
                return replace(state, leader=leader, isr=(leader,))

            await asyncio.gather(*(topics.update_partition("race", 0, flip, attempts=50) for _ in range(10)))
            final = await topics.partition("race", 0)
            assert final.state.leader_epoch == 10 and final.state.leader == 1  # ten leader changes, none lost

    asyncio.run(asyncio.wait_for(scenario(), 30))
