"""Watch and lease cycles leave nothing behind: no open sockets, threads or tasks grow with use."""

from __future__ import annotations

import asyncio
import os
import threading

from corral.client import AsyncClient, Client

from tests.support.servers import ServerProcess

CYCLES = 200


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_sync_watch_and_lease_cycles(corral_server: ServerProcess, prefix: str) -> None:
    with Client(corral_server.url) as client:
        start = client.put(prefix + "k", "1").revision  # not 1: other tests compact the shared server
        with client.watch(prefix + "k"):
            pass
        fds, threads = _open_fds(), threading.active_count()
        for i in range(CYCLES):
            with client.watch(prefix + "k", start_revision=start) as watch:
                if i % 2:
                    next(iter(watch), None)  # some cycles read before cancelling
        for _ in range(20):
            with client.lease(5):
                pass
        assert _open_fds() - fds < 10
        assert threading.active_count() - threads <= 1


def test_async_watch_cycles(corral_server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(corral_server.url) as client:
            start = (await client.put(prefix + "k", "1")).revision
            fds, tasks = _open_fds(), len(asyncio.all_tasks())
            for i in range(CYCLES):
                async with client.watch(prefix + "k", start_revision=start) as watch:
                    if i % 2:
                        async for _ in watch:
                            break
            for _ in range(20):
                async with client.lease(5):
                    pass
            assert _open_fds() - fds < 10
            assert len(asyncio.all_tasks()) == tasks

    asyncio.run(scenario())
