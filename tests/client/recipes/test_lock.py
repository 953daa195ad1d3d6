"""Lock recipe: mutual exclusion under contention (tasks and threads), arrival order, no orphaned
contender after a failed acquire, lost lease, fencing tokens, and agreement with `/v3/lock`."""

from __future__ import annotations

import asyncio
import base64
import threading
import time

import httpx
import pytest
from corral.client import AsyncClient, Client, LeaseLostError
from corral.client.recipes.lock import AsyncLock, Lock

from tests.support.servers import ServerProcess


async def _wait_contenders(lock: AsyncLock, n: int) -> None:
    async with asyncio.timeout(5):
        while len(await lock.contenders()) < n:
            await asyncio.sleep(0.02)


def test_mutual_exclusion_between_tasks(server: ServerProcess, prefix: str) -> None:
    """Read-modify-write of a KV counter under the lock, from racing tasks: no update is lost, and no
    two holders overlap."""
    workers, rounds = 4, 4

    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            holding: list[int] = []
            overlaps: list[int] = []
            tokens: list[int] = []

            async def worker(n: int) -> None:
                lock = AsyncLock(client, prefix + "lock", ttl=5)
                for _ in range(rounds):
                    async with lock:
                        holding.append(n)
                        if len(holding) > 1:
                            overlaps.append(n)
                        assert lock.fencing_token is not None
                        tokens.append(lock.fencing_token)
                        value = int((await client.get(prefix + "count")).value or b"0")
                        await asyncio.sleep(0.005)  # widen the race window
                        await client.put(prefix + "count", str(value + 1))
                        holding.remove(n)

            await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(workers))), 30)
            assert overlaps == []
            assert (await client.get(prefix + "count")).value == str(workers * rounds).encode()
            assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)  # fencing tokens only grow
            assert await AsyncLock(client, prefix + "lock").contenders() == []

    asyncio.run(scenario())


def test_mutual_exclusion_between_threads(server: ServerProcess, prefix: str) -> None:
    workers, rounds = 3, 4
    shared = {"value": 0}
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with Client(server.url) as client:
                lock = Lock(client, prefix + "lock", ttl=5)
                for _ in range(rounds):
                    with lock:
                        value = shared["value"]
                        time.sleep(0.005)
                        shared["value"] = value + 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and not any(t.is_alive() for t in threads)
    assert shared["value"] == workers * rounds


def test_granted_in_arrival_order(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            holder = AsyncLock(client, prefix + "lock", ttl=5, identifier="holder")
            await holder.acquire()
            order: list[str] = []

            async def take(name: str) -> None:
                lock = AsyncLock(client, prefix + "lock", ttl=5, identifier=name)
                await lock.acquire()
                order.append(name)
                await asyncio.sleep(0.05)
                await lock.release()

            tasks = []
            for i, name in enumerate(["w1", "w2", "w3", "w4"]):
                tasks.append(asyncio.create_task(take(name)))
                await _wait_contenders(holder, i + 2)  # each queued before the next arrives
            assert [kv.value for kv in await holder.contenders()] == [b"holder", b"w1", b"w2", b"w3", b"w4"]
            await holder.release()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            assert order == ["w1", "w2", "w3", "w4"]

    asyncio.run(scenario())


def test_failed_acquire_leaves_no_contender(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        holder = Lock(client, prefix + "lock", ttl=5, identifier="holder")
        assert holder.acquire()
        with pytest.raises(RuntimeError):
            holder.acquire()
        other = Lock(client, prefix + "lock", ttl=5, identifier="other")
        assert not other.acquire(blocking=False)
        assert [kv.value for kv in holder.contenders()] == [b"holder"]
        started = time.monotonic()
        assert not other.acquire(timeout=0.3)
        assert 0.25 < time.monotonic() - started < 3
        assert [kv.value for kv in holder.contenders()] == [b"holder"]
        assert other.lease_id == 0 and other.fencing_token is None and not other.is_acquired()
        assert other.release() is False
        assert holder.release() is True
        assert other.acquire(blocking=False) and other.is_acquired()
        other.release()


def test_lost_lease_fires_lost_and_frees_the_lock(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        called: list[LeaseLostError] = []
        lock = Lock(client, prefix + "lock", ttl=2, on_lost=called.append)
        with lock:
            token = lock.fencing_token
            assert token is not None and lock.is_acquired()
            client.lease_revoke(lock.lease_id)
            assert lock.lost.wait(5) and len(called) == 1
            assert not lock.is_acquired()
            successor = Lock(client, prefix + "lock", ttl=2)
            assert successor.acquire(timeout=5)
            assert successor.fencing_token is not None and successor.fencing_token > token
            successor.release()


def test_lost_lease_while_waiting_raises(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            holder = AsyncLock(client, prefix + "lock", ttl=5)
            await holder.acquire()
            waiter = AsyncLock(client, prefix + "lock", ttl=2)
            waiting = asyncio.create_task(waiter.acquire())
            await _wait_contenders(holder, 2)
            await client.lease_revoke(waiter.lease_id)
            with pytest.raises(LeaseLostError):
                await asyncio.wait_for(waiting, 5)
            assert waiter.lost.is_set() and len(await holder.contenders()) == 1
            cancelled = asyncio.create_task(AsyncLock(client, prefix + "lock", ttl=5).acquire())
            await _wait_contenders(holder, 2)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            async with asyncio.timeout(5):
                while len(await holder.contenders()) != 1:
                    await asyncio.sleep(0.02)
            await holder.release()

    asyncio.run(scenario())


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def test_excludes_the_server_lock_service(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client, client.lease(5) as lease:
        body = {"name": _b64(prefix + "lock"), "lease": str(lease.id)}
        held = httpx.post(server.url + "/v3/lock/lock", json=body, timeout=10).json()
        lock = Lock(client, prefix + "lock", ttl=5)
        assert not lock.acquire(blocking=False)
        result: list[bool] = []
        waiting = threading.Thread(target=lambda: result.append(lock.acquire(timeout=10)))
        waiting.start()
        time.sleep(0.3)
        assert waiting.is_alive()
        httpx.post(server.url + "/v3/lock/unlock", json={"key": held["key"]}, timeout=10)
        waiting.join(10)
        assert result == [True]
        server_side = threading.Thread(target=lambda: httpx.post(server.url + "/v3/lock/lock", json=body, timeout=10))
        server_side.start()
        time.sleep(0.3)
        assert server_side.is_alive()  # the server's lock waits for the recipe's holder
        lock.release()
        server_side.join(10)
        assert not server_side.is_alive()
