"""Leases through the client: grant/revoke/time-to-live, and keep-alive in the background."""

from __future__ import annotations

import asyncio
import time

import pytest
from corral.client import AsyncClient, Client, LeaseLostError, LeaseNotFound

from tests.support.servers import ServerProcess


def test_grant_ttl_revoke(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        grant = client.lease_grant(30)
        assert grant.id > 0 and grant.ttl == 30
        client.put(prefix + "a", "1", lease=grant.id)
        info = client.lease_time_to_live(grant.id, keys=True)
        assert info.granted_ttl == 30 and 0 < info.ttl <= 30 and info.keys == [(prefix + "a").encode()]
        assert grant.id in client.leases()
        assert client.lease_keep_alive_once(grant.id).ttl == 30
        client.lease_revoke(grant.id)
        assert client.get(prefix + "a").kvs == []
        assert client.lease_time_to_live(grant.id).ttl == -1
        assert client.lease_keep_alive_once(grant.id).ttl == 0
        with pytest.raises(LeaseNotFound):
            client.lease_revoke(grant.id)
        with pytest.raises(LeaseNotFound):
            client.put(prefix + "b", "1", lease=grant.id)


def test_keep_alive_outlives_ttl_and_revokes_on_exit(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        with client.lease(1) as lease:
            client.put(prefix + "held", "1", lease=lease.id)
            time.sleep(2.5)  # more than twice the TTL: only the keep-alive thread can have kept it
            assert client.get(prefix + "held").count == 1 and not lease.lost
        assert lease.lost and client.get(prefix + "held").count == 0
        with pytest.raises(LeaseLostError):
            lease.check()


def test_lost_lease_is_reported(server: ServerProcess, prefix: str) -> None:
    lost: list[LeaseLostError] = []
    with Client(server.url) as client:
        lease = client.lease(5, on_lost=lost.append)
        client.lease_revoke(lease.id)  # someone else revokes it
        assert lease.wait_lost(timeout=5.0)
        assert len(lost) == 1 and lost[0].lease_id == lease.id
        with pytest.raises(LeaseLostError):
            lease.check()
        lease.revoke()  # harmless once lost


def test_async_keep_alive(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            async with client.lease(1) as lease:
                await client.put(prefix + "held", "1", lease=lease.id)
                await asyncio.sleep(2.5)
                assert (await client.get(prefix + "held")).count == 1
            assert lease.lost and (await client.get(prefix + "held")).count == 0
            other = await client.lease(5)
            await client.lease_revoke(other.id)
            assert await other.wait_lost(timeout=5.0)
            mine = await client.lease(5)
            waiter = asyncio.create_task(mine.wait_lost(timeout=5.0))
            await asyncio.sleep(0.1)
            await mine.revoke()  # the waiter is told, not cancelled
            assert await waiter
            assert not await (await client.lease(5)).wait_lost(timeout=0.2)

    asyncio.run(scenario())
