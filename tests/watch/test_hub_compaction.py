"""Watchers and the compaction revision, in process: a watcher catching up from exactly the compaction
revision reads it as etcd's compacted history holds it (etcd's unsynced watchers read the pruned backend), a
live one gets it as committed (etcd hands its synced watchers each commit's changes). The differential
tests against etcd are in tests/compat/test_etcd_watch.py."""

from __future__ import annotations

import asyncio

from corral.store import kv
from corral.store.state_machine import KVStateMachine
from corral.store.types import CompactionRequest, DeleteRangeRequest, Event, EventType, PutRequest, TxnRequest
from corral.watch.hub import WatchBatch, WatchHub, WatchSpec

EVERYTHING = WatchSpec(b"\x00", b"\x00", prev_kv=True)


def changes(events: list[Event]) -> list[tuple[EventType, bytes, int, bool]]:
    """(type, key, revision, has prev_kv) of each event."""
    return [(e.type, e.kv.key, e.kv.mod_revision, e.prev_kv is not None) for e in events]


def history(machine: KVStateMachine) -> None:
    """rev 2: k=1, d=1; rev 3: k=2, delete d; rev 4: x."""
    machine.apply_command(TxnRequest(success=(PutRequest(b"k", b"1"), PutRequest(b"d", b"1"))))
    machine.apply_command(TxnRequest(success=(PutRequest(b"k", b"2"), DeleteRangeRequest(b"d"))))
    machine.apply_command(PutRequest(b"x", b"1"))


async def next_batch(hub: WatchHub, spec: WatchSpec) -> WatchBatch:
    return await asyncio.wait_for(hub.watch(spec).next(), 1.0)


def test_catching_up_from_the_compaction_revision_reads_it_as_etcd_keeps_it() -> None:
    machine = KVStateMachine()
    hub = WatchHub(machine.store)
    history(machine)
    kv.compact(machine.store, CompactionRequest(3))
    batch = asyncio.run(next_batch(hub, WatchSpec(b"\x00", b"\x00", start_revision=3, prev_kv=True)))
    assert batch.revision == 4
    assert changes(batch.events) == [(EventType.PUT, b"k", 3, False), (EventType.PUT, b"x", 4, False)]


def test_a_restored_store_gives_the_same_catch_up() -> None:
    machine = KVStateMachine()
    history(machine)
    kv.compact(machine.store, CompactionRequest(3))
    snapshot = machine.snapshot()
    data = snapshot.serialize()
    snapshot.release()
    follower = KVStateMachine()
    follower.restore(data)
    for store in (machine.store, follower.store):
        batch = asyncio.run(next_batch(WatchHub(store), WatchSpec(b"\x00", b"\x00", start_revision=3, prev_kv=True)))
        assert changes(batch.events) == [(EventType.PUT, b"k", 3, False), (EventType.PUT, b"x", 4, False)]


def test_a_live_watcher_gets_the_compaction_revision_as_committed() -> None:
    # The revision is committed while the watcher is live, and compacted before its consumer reads it: etcd
    # has already handed the changes to its synced watcher, deletes and all, so Corral's reads them as committed.
    async def scenario() -> WatchBatch:
        machine = KVStateMachine()
        hub = WatchHub(machine.store)
        machine.apply_command(TxnRequest(success=(PutRequest(b"k", b"1"), PutRequest(b"d", b"1"))))
        watcher = hub.watch(EVERYTHING)
        with_nothing_yet = asyncio.ensure_future(watcher.next())
        await asyncio.sleep(0)
        assert not with_nothing_yet.done()
        machine.apply_command(TxnRequest(success=(PutRequest(b"k", b"2"), DeleteRangeRequest(b"d"))))
        kv.compact(machine.store, CompactionRequest(3))
        return await asyncio.wait_for(with_nothing_yet, 1.0)

    batch = asyncio.run(scenario())
    assert changes(batch.events) == [(EventType.PUT, b"k", 3, True), (EventType.DELETE, b"d", 3, True)]
