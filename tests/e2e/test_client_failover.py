"""The client across member failures in a 3-member cluster: watches resume on another member without a
gap or a duplicate, leases stay alive through a leader kill, and calls fail over to live endpoints."""

from __future__ import annotations

import asyncio
import threading
import time

from corral.client import AsyncClient, Client

from tests.support.servers import ServerProcess, cluster_leader

WRITES = 300


def _write_sequence(urls: list[str], key_prefix: str, done: threading.Event) -> None:
    with Client(urls, timeout=2.0) as writer:
        for i in range(WRITES):
            writer.put(f"{key_prefix}{i:05}", str(i))
    done.set()


def test_watch_resumes_on_another_member_without_gap_or_duplicate(cluster: list[ServerProcess]) -> None:
    leader, _ = cluster_leader(cluster)
    watched = next(m for m in cluster if m is not leader)
    others = [m.url for m in cluster if m is not watched]
    done = threading.Event()
    with Client([watched.url, *others], timeout=2.0) as client:
        with client.watch_prefix("seq/", reconnect_timeout=20.0) as watch:
            writer = threading.Thread(target=_write_sequence, args=(others, "seq/", done), daemon=True)
            writer.start()
            seen: list[int] = []
            killed = False
            deadline = time.monotonic() + 60
            for event in watch:
                seen.append(int(event.value))
                if len(seen) == 50 and not killed:
                    watched.kill()  # mid-stream: the rest must come from another member
                    killed = True
                if len(seen) == WRITES or time.monotonic() > deadline:
                    break
        writer.join(30)
    assert killed and done.is_set()
    assert seen == list(range(WRITES))


def test_calls_and_leases_survive_a_leader_kill(cluster: list[ServerProcess]) -> None:
    leader, _ = cluster_leader(cluster)
    ordered = [leader.url] + [m.url for m in cluster if m is not leader]

    async def scenario() -> None:
        async with AsyncClient(ordered, timeout=2.0) as client:
            async with client.lease(3) as lease:
                await client.put("owned", "1", lease=lease.id)
                leader.kill()
                await asyncio.sleep(5)  # longer than the TTL: only keep-alives through the survivors keep it
                assert not lease.lost
                got = await client.get("owned")  # the dead first endpoint is skipped
                assert got.value == b"1"
                assert (await client.put("after", "1")).revision > got.kvs[0].mod_revision

    asyncio.run(scenario())
