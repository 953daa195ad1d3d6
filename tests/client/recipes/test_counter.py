"""Counter recipe: exact under concurrent increments from tasks and threads."""

from __future__ import annotations

import asyncio
import threading

import pytest
from corral.client import AsyncClient, Client
from corral.client.recipes.counter import AsyncCounter, Counter, CounterContended

from tests.support.servers import ServerProcess


def test_concurrent_tasks(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:

            async def worker() -> list[int]:
                counter = AsyncCounter(client, prefix + "n")
                return [await counter.increment() for _ in range(10)]

            results = await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(8))), 30)
            values = [v for r in results for v in r]
            assert sorted(values) == list(range(1, 81))  # every add saw a distinct old value
            assert await AsyncCounter(client, prefix + "n").get() == 80

    asyncio.run(scenario())


def test_concurrent_threads_and_kazoo_spelling(server: ServerProcess, prefix: str) -> None:
    def worker() -> None:
        with Client(server.url) as client:
            counter = Counter(client, prefix + "n", default=100)
            for _ in range(10):
                counter += 2
                counter -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with Client(server.url) as client:
        counter = Counter(client, prefix + "n", default=100)
        assert counter.value == 140 and client.get(prefix + "n").value == b"140"
        assert counter.decrement(40) == 100 and counter.add(0) == 100
        assert Counter(client, prefix + "other", default=7).value == 7


def test_bounded_retries(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            counter = AsyncCounter(client, prefix + "n", max_tries=1)
            real_txn = client.txn

            async def racing_txn(*args: object, **kwargs: object) -> object:
                await client.put(prefix + "n", "5")  # someone else always gets there first
                return await real_txn(*args, **kwargs)  # type: ignore[arg-type]

            client.txn = racing_txn  # type: ignore[method-assign, assignment]
            with pytest.raises(CounterContended):
                await counter.add(1)
            client.txn = real_txn  # type: ignore[method-assign]
            assert await counter.add(1) == 6

    asyncio.run(scenario())
