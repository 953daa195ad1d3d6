"""Semaphore recipe: never more than `max_leases` holders, slots granted in arrival order, failed
acquires leave nothing behind, and a holder whose lease goes frees its slot."""

from __future__ import annotations

import asyncio
import threading
import time

from corral.client import AsyncClient, Client
from corral.client.recipes.semaphore import AsyncSemaphore, Semaphore

from tests.support.servers import ServerProcess


def test_at_most_max_leases_holders(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            inside: set[int] = set()
            peak = 0

            async def worker(n: int) -> None:
                nonlocal peak
                semaphore = AsyncSemaphore(client, prefix + "sem", max_leases=2, ttl=5)
                for _ in range(2):
                    async with semaphore:
                        inside.add(n)
                        peak = max(peak, len(inside))
                        assert len(await semaphore.lease_holders()) <= 2
                        await asyncio.sleep(0.05)
                        inside.discard(n)

            await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(5))), 30)
            assert peak == 2
            assert await AsyncSemaphore(client, prefix + "sem", 2).contenders() == []

    asyncio.run(scenario())


def test_arrival_order_and_failed_acquires(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        a, b, c, d = (Semaphore(client, prefix + "sem", 2, ttl=5, identifier=n) for n in "abcd")
        assert a.acquire() and b.acquire(blocking=False)
        assert not c.acquire(blocking=False)
        assert not c.acquire(timeout=0.2)
        assert [kv.value for kv in a.contenders()] == [b"a", b"b"]
        got: list[str] = []
        threads = [threading.Thread(target=lambda s=s, n=n: s.acquire(timeout=10) and got.append(n))
                   for s, n in ((c, "c"), (d, "d"))]  # fmt: skip
        for thread in threads:
            thread.start()
            deadline = time.monotonic() + 5
            while len(a.contenders()) < 3 + threads.index(thread) and time.monotonic() < deadline:
                time.sleep(0.02)
        assert [kv.value for kv in a.lease_holders()] == [b"a", b"b"]
        b.release()  # one slot: the first to arrive gets it
        threads[0].join(5)
        assert got == ["c"] and threads[1].is_alive()
        client.lease_revoke(a.lease_id)  # a holder's lease ends: its slot frees itself
        assert a.lost.wait(5)
        threads[1].join(5)
        assert got == ["c", "d"] and [kv.value for kv in a.lease_holders()] == [b"c", b"d"]
        assert c.is_acquired() and d.is_acquired() and not a.is_acquired()
        for holder in (a, c, d):
            holder.release()
        assert a.contenders() == []
