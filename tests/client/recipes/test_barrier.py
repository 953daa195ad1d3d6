"""Barrier and double barrier recipes."""

from __future__ import annotations

import asyncio
import threading
import time

from corral.client import AsyncClient, Client
from corral.client.recipes.barrier import AsyncBarrier, AsyncDoubleBarrier, Barrier, DoubleBarrier

from tests.support.servers import ServerProcess


def test_barrier_holds_waiters_until_removed(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        barrier = Barrier(client, prefix + "gate")
        assert barrier.wait(timeout=0.1)  # not up: nothing to wait for
        assert barrier.create() and not barrier.create()
        assert not barrier.wait(timeout=0.2)
        released: list[float] = []
        waiters = [threading.Thread(target=lambda: barrier.wait(10) and released.append(time.monotonic()))
                   for _ in range(3)]  # fmt: skip
        for waiter in waiters:
            waiter.start()
        time.sleep(0.3)
        assert released == []
        removed_at = time.monotonic()
        assert barrier.remove() and not barrier.remove()
        for waiter in waiters:
            waiter.join(5)
        assert len(released) == 3 and min(released) >= removed_at


def test_async_barrier(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            barrier = AsyncBarrier(client, prefix + "gate")
            await barrier.create()
            waiting = asyncio.create_task(barrier.wait(10))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            await AsyncBarrier(client, prefix + "gate").remove()
            assert await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())


def test_double_barrier_threads(server: ServerProcess, prefix: str) -> None:
    n = 3
    entered: list[float] = []
    left: list[float] = []
    arrivals: list[float] = []
    departures: list[float] = []

    def participant(i: int) -> None:
        with Client(server.url) as client:
            barrier = DoubleBarrier(client, prefix + "round", n, ttl=5, identifier=str(i))
            time.sleep(0.15 * i)  # arrive one by one
            arrivals.append(time.monotonic())
            assert barrier.enter(timeout=10) and barrier.participating
            entered.append(time.monotonic())
            time.sleep(0.15 * (n - i))  # leave in the opposite order
            departures.append(time.monotonic())
            assert barrier.leave(timeout=10)
            left.append(time.monotonic())

    threads = [threading.Thread(target=participant, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(entered) == n and len(left) == n
    assert min(entered) >= max(arrivals)  # nobody got in before the last arrived
    assert min(left) >= max(departures)  # nobody got out before the last left
    with Client(server.url) as client:
        assert client.get(prefix + "round", prefix=True).kvs == []


def test_double_barrier_enter_timeout_leaves(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            lonely = AsyncDoubleBarrier(client, prefix + "round", 2, ttl=5)
            assert not await lonely.enter(timeout=0.3)
            assert not lonely.participating
            assert (await client.get(prefix + "round", prefix=True)).kvs == []
            first = AsyncDoubleBarrier(client, prefix + "round", 2, ttl=5)
            second = AsyncDoubleBarrier(client, prefix + "round", 2, ttl=5)
            assert all(await asyncio.wait_for(asyncio.gather(first.enter(), second.enter()), 10))
            assert all(await asyncio.wait_for(asyncio.gather(first.leave(), second.leave()), 10))

    asyncio.run(scenario())
