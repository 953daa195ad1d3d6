"""Watches through the client: events in order, whole revisions, history, compaction, cancel."""

from __future__ import annotations

import asyncio
import threading

import pytest
from corral.client import AsyncClient, Client, CompactedError, Event, EventType
from corral.client import txn as t

from tests.support.servers import ServerProcess


def _take(events: object, n: int) -> list[Event]:
    out: list[Event] = []
    for event in events:  # type: ignore[attr-defined]
        out.append(event)
        if len(out) == n:
            break
    return out


def test_watch_prefix_live_and_history(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        first = client.put(prefix + "a", "1").revision
        with client.watch_prefix(prefix, prev_kv=True) as watch:
            client.txn([], [t.put(prefix + "b", "2"), t.put(prefix + "c", "3")])
            client.delete(prefix + "a")
            responses = watch.responses()
            together = next(responses)
            assert [e.key for e in together.events] == [(prefix + "b").encode(), (prefix + "c").encode()]
            deleted = next(responses).events[0]
            assert deleted.type is EventType.DELETE and deleted.prev_kv is not None and deleted.prev_kv.value == b"1"
            assert watch.next_revision == deleted.revision + 1
        with client.watch_prefix(prefix, start_revision=first) as replay:
            events = _take(replay, 4)
        assert [(e.type.value, e.key[len(prefix):]) for e in events] == [
            ("PUT", b"a"), ("PUT", b"b"), ("PUT", b"c"), ("DELETE", b"a")]  # fmt: skip


def test_filters_and_single_key(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        with client.watch(prefix + "k", filters=["NOPUT"]) as watch:
            client.put(prefix + "k", "1")
            client.put(prefix + "other", "1")
            client.delete(prefix + "k")
            (event,) = _take(watch, 1)
        assert event.type is EventType.DELETE and event.key == (prefix + "k").encode()


def test_compacted_start_raises(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        old = client.put(prefix + "a", "1").revision
        now = client.put(prefix + "a", "2").revision
        client.compact(now)
        with pytest.raises(CompactedError) as compacted:
            with client.watch(prefix + "a", start_revision=old) as watch:
                _take(watch, 1)
        assert compacted.value.compact_revision == now


def test_cancel_from_another_thread(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        watch = client.watch(prefix + "quiet")
        threading.Timer(0.3, watch.cancel).start()
        assert list(watch) == []


def test_async_watch(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            async with client.watch_prefix(prefix) as watch:
                for i in range(20):
                    await client.put(f"{prefix}{i}", str(i))
                seen: list[int] = []
                async for event in watch:
                    seen.append(int(event.value))
                    if len(seen) == 20:
                        break
            assert seen == list(range(20))

    asyncio.run(scenario())
