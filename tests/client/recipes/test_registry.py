"""Broker registry: leased registrations, duplicate ids, joins and leaves (a SIGKILLed broker process too)."""

from __future__ import annotations

import asyncio
import logging
import queue
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import pytest
from corral.client import AsyncClient, Client
from corral.client.recipes.registry import (
    AsyncBrokerRegistry,
    BrokerAlreadyRegisteredError,
    BrokerInfo,
    BrokerRegistry,
    ChangeKind,
    MembershipChange,
)

from tests.support.servers import REPO_ROOT, ServerProcess

BROKER = textwrap.dedent("""
    import sys, time
    from corral.client import Client
    from corral.client.recipes.registry import BrokerRegistry

    url, root, broker_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = Client(url)
    registration = BrokerRegistry(client, root).register(broker_id, "127.0.0.1", 9092, rack="r1", ttl=1)
    print(registration.lease_id, flush=True)
    time.sleep(120)
""")


def test_register_list_deregister(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        registry = BrokerRegistry(client, root=prefix)
        with registry.register(1, "10.0.0.1", 9092, rack="a", metadata={"version": "3.7"}) as one:
            two = registry.register(2, "10.0.0.2", 9093)
            listed = registry.list()
            assert [b.broker_id for b in listed] == [1, 2]
            assert listed[0] == one.info and listed[0].address == "10.0.0.1:9092"
            assert listed[0].rack == "a" and listed[0].metadata == {"version": "3.7"}
            assert one.info.epoch < two.info.epoch and one.info.lease == one.lease_id
            two.deregister()
            assert two.lost and [b.broker_id for b in registry.list()] == [1]
            assert registry.get(2) is None and registry.get(1) == one.info
        assert registry.list() == []


def test_a_live_id_cannot_be_registered_twice(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        registry = BrokerRegistry(client, root=prefix)
        first = registry.register(7, "10.0.0.7", 9092)
        with pytest.raises(BrokerAlreadyRegisteredError) as taken:
            registry.register(7, "10.0.0.8", 9092)
        assert taken.value.broker_id == 7 and taken.value.existing == first.info
        assert "already registered" in str(taken.value)
        assert registry.list() == [first.info]  # the loser changed nothing and revoked its lease
        assert client.lease_time_to_live(first.lease_id).ttl > 0
        first.deregister()
        again = registry.register(7, "10.0.0.8", 9092)
        assert again.info.epoch > first.info.epoch  # a new registration is a new broker epoch
        again.deregister()


def test_killed_broker_process_leaves_within_its_ttl(server: ServerProcess, prefix: str) -> None:
    joined: queue.Queue[BrokerInfo] = queue.Queue()
    left: queue.Queue[tuple[BrokerInfo, float]] = queue.Queue()
    with Client(server.url) as client:
        registry = BrokerRegistry(client, root=prefix)
        with registry.subscribe(on_join=joined.put, on_leave=lambda b: left.put((b, time.monotonic()))):
            with subprocess.Popen(
                [sys.executable, "-c", BROKER, server.url, prefix, "42"], cwd=REPO_ROOT, stdout=subprocess.PIPE
            ) as broker:
                try:
                    assert broker.stdout is not None
                    lease_id = int(broker.stdout.readline())
                    info = joined.get(timeout=10)
                    assert info.broker_id == 42 and info.rack == "r1" and info.lease == lease_id
                    ttl = client.lease_time_to_live(lease_id).granted_ttl  # etcd may raise 1 s to its minimum
                    time.sleep(ttl + 0.5)
                    assert registry.get(42) is not None  # kept alive by the process's portal thread
                    broker.send_signal(signal.SIGKILL)
                    broker.wait(5)
                    killed = time.monotonic()
                    gone, at = left.get(timeout=ttl + 5)
                    assert gone == info
                    assert at - killed <= ttl + 1.5  # the last renewal was at most TTL/3 before the kill
                    assert registry.list() == []
                finally:
                    broker.kill()


def test_changes_snapshot_then_joins_leaves_and_updates(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            registry = AsyncBrokerRegistry(client, root=prefix)
            one = await registry.register(1, "h1", 1)
            changes = registry.changes()
            snapshot = await anext(changes)
            assert snapshot.kind is ChangeKind.SNAPSHOT and snapshot.broker is None
            assert snapshot.brokers == (one.info,)
            two = await registry.register(2, "h2", 2)
            joined = await anext(changes)
            assert (joined.kind, joined.broker, joined.brokers) == (ChangeKind.JOIN, two.info, (one.info, two.info))
            await client.put(registry.key(2), "not json")  # ignored, logged: never breaks the stream
            moved = replace(two.info, port=2222)
            await client.put(registry.key(2), moved.encode(), lease=two.lease.id)
            updated = await anext(changes)
            assert (updated.kind, updated.broker, updated.brokers) == (ChangeKind.UPDATE, moved, (one.info, moved))
            await one.deregister()
            left = await anext(changes)
            assert (left.kind, left.broker, left.brokers) == (ChangeKind.LEAVE, one.info, (moved,))
            await two.deregister()
            await changes.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_changes_list_again_after_compaction(server: ServerProcess, prefix: str) -> None:
    """The watch opens after the snapshot is consumed: compact past it, and the difference is reported."""

    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            registry = AsyncBrokerRegistry(client, root=prefix)
            one = await registry.register(1, "h1", 1)
            changes = registry.changes()
            assert (await anext(changes)).brokers == (one.info,)
            two = await registry.register(2, "h2", 2)
            await one.deregister()
            three = await registry.register(3, "h3", 3)
            await client.compact((await client.put(prefix + "x", "1")).revision)
            seen: list[MembershipChange] = [await anext(changes) for _ in range(3)]
            assert [(c.kind, c.broker) for c in seen] == [
                (ChangeKind.LEAVE, one.info), (ChangeKind.JOIN, two.info), (ChangeKind.JOIN, three.info)]  # fmt: skip
            assert seen[-1].brokers == (two.info, three.info)
            four = await registry.register(4, "h4", 4)  # and it goes on watching from the new listing
            assert (await anext(changes)).broker == four.info
            await changes.aclose()
            for registration in (two, three, four):
                await registration.deregister()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_subscribe_survives_a_failing_callback(
    server: ServerProcess, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            registry = AsyncBrokerRegistry(client, root=prefix)
            existing = await registry.register(1, "h1", 1)
            joins: asyncio.Queue[int] = asyncio.Queue()
            leaves: asyncio.Queue[int] = asyncio.Queue()

            async def on_join(broker: BrokerInfo) -> None:
                if broker.broker_id == 2:
                    raise RuntimeError("callback bug")
                await joins.put(broker.broker_id)

            async with await registry.subscribe(on_join=on_join, on_leave=lambda b: leaves.put_nowait(b.broker_id)):
                assert joins.get_nowait() == 1  # the existing broker was reported before subscribe returned
                bad = await registry.register(2, "h2", 2)
                good = await registry.register(3, "h3", 3)
                assert await asyncio.wait_for(joins.get(), 5) == 3
                await bad.deregister()
                assert await asyncio.wait_for(leaves.get(), 5) == 2
            await good.deregister()
            await existing.deregister()

    with caplog.at_level(logging.ERROR, logger="corral.client.recipes"):
        asyncio.run(asyncio.wait_for(scenario(), 20))
    assert any("callback bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_blocking_changes_iterator(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        registry = BrokerRegistry(client, root=prefix)
        changes = registry.changes()
        assert next(changes).kind is ChangeKind.SNAPSHOT
        with registry.register(5, "h5", 5) as five:
            change = next(changes)
            assert (change.kind, change.broker) == (ChangeKind.JOIN, five.info)
        assert next(changes).kind is ChangeKind.LEAVE
        changes.close()  # closes the watch on the portal loop
