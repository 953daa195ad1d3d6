"""The MVCC store: revisions, historical reads, ranges, compaction, snapshots."""

import pytest
from corral.store.errors import Compacted, FutureRevision
from corral.store.mvcc import MVCCStore
from corral.store.types import Event, EventType, KeyValue


def put(store: MVCCStore, key: bytes, value: bytes = b"v", lease: int = 0) -> int:
    txn = store.write()
    txn.put(key, value, lease)
    return txn.commit()


def delete(store: MVCCStore, key: bytes, end: bytes = b"") -> int:
    txn = store.write()
    txn.delete_range(key, end)
    return txn.commit()


def keys(store: MVCCStore, key: bytes, end: bytes = b"", revision: int = 0) -> list[bytes]:
    return [kv.key for kv in store.range(key, end, revision)[0]]


def test_an_empty_store_is_at_revision_one_and_each_change_adds_one() -> None:
    store = MVCCStore()
    assert store.revision == 1
    assert put(store, b"a") == 2
    assert put(store, b"a") == 3
    assert delete(store, b"a") == 4
    assert delete(store, b"a") == 4  # deleting nothing changes nothing


def test_recreated_key_starts_a_new_generation() -> None:
    # The capture from the reference: put@52 put@53 delete@54 put@55.
    store = MVCCStore()
    for _ in range(50):
        put(store, b"filler")
    assert put(store, b"vv", b"1") == 52
    put(store, b"vv", b"2")
    delete(store, b"vv")
    put(store, b"vv", b"3")
    assert store.get(b"vv") == KeyValue(b"vv", 55, 55, 1, b"3")
    assert store.range(b"vv", revision=53)[0] == [KeyValue(b"vv", 52, 53, 2, b"2")]
    assert store.range(b"vv", revision=54)[0] == []


def test_one_write_txn_takes_one_revision_for_all_its_changes() -> None:
    store = MVCCStore()
    put(store, b"x")
    txn = store.write()
    txn.put(b"a", b"1")
    txn.put(b"b", b"2")
    txn.delete_range(b"x")
    assert txn.revision == 3  # reads inside the txn see its own writes
    assert txn.commit() == 3
    assert [(e.type, e.kv.key) for e in store.events_at(3)] == [
        (EventType.PUT, b"a"), (EventType.PUT, b"b"), (EventType.DELETE, b"x"),
    ]  # fmt: skip
    assert {kv.mod_revision for kv in store.range(b"a", b"c")[0]} == {3}


def test_range_conventions() -> None:
    store = MVCCStore()
    for key in (b"a", b"key/a", b"key/b", b"key0", b"z"):
        put(store, key)
    assert keys(store, b"key/", b"key0") == [b"key/a", b"key/b"]  # prefix
    assert keys(store, b"key/b", b"\x00") == [b"key/b", b"key0", b"z"]  # from key
    assert keys(store, b"\x00", b"\x00") == [b"a", b"key/a", b"key/b", b"key0", b"z"]  # everything
    assert keys(store, b"z", b"a") == []  # end before key
    assert keys(store, b"key/a") == [b"key/a"]


def test_limit_counts_everything() -> None:
    store = MVCCStore()
    for i in range(5):
        put(store, b"k%d" % i)
    kvs, count, _ = store.range(b"k", b"l", limit=2)
    assert [kv.key for kv in kvs] == [b"k0", b"k1"] and count == 5
    assert store.range(b"k", b"l", count_only=True)[:2] == ([], 5)


def test_revision_errors() -> None:
    store = MVCCStore()
    put(store, b"a")
    put(store, b"a")
    with pytest.raises(FutureRevision):
        store.range(b"a", revision=4)
    store.compact(2)
    with pytest.raises(Compacted):
        store.range(b"a", revision=1)
    assert store.range(b"a", revision=2)[0][0].mod_revision == 2  # the compaction point itself is readable
    with pytest.raises(Compacted):
        store.compact(2)
    with pytest.raises(FutureRevision):
        store.compact(10)


def test_compacting_at_zero_is_allowed_once() -> None:
    store = MVCCStore()
    store.compact(0)
    with pytest.raises(Compacted):
        store.compact(0)


def test_compaction_keeps_latest_versions_and_drops_dead_keys() -> None:
    store = MVCCStore()
    put(store, b"old")  # 2
    put(store, b"gone")  # 3
    delete(store, b"gone")  # 4
    put(store, b"hot", b"1")  # 5
    put(store, b"hot", b"2")  # 6
    store.compact(6)
    assert keys(store, b"\x00", b"\x00") == [b"hot", b"old"]
    assert store.key_count() == 2
    assert store.events_at(5) == [] and len(store.events_at(6)) == 1
    assert store.first_revision == 6


def test_rebuild_from_a_view_reads_the_same() -> None:
    store = MVCCStore()
    for i in range(30):
        put(store, b"k%d" % (i % 7), b"%d" % i)
        if i % 5 == 0:
            delete(store, b"k%d" % (i % 3))
    store.compact(20)
    view = store.view()
    assert view.base_revision == 20
    copy = MVCCStore.rebuild(
        view.base_revision,
        view.base(),
        ((rev, [(e.type, e.kv) for e in events]) for rev, events in view.history()),
        store.revision,
        store.compact_revision,
    )
    view.release()
    assert [(e.type, e.kv) for e in copy.events_at(20)] == [(e.type, e.kv) for e in store.events_at(20)]
    for revision in range(20, store.revision + 1):
        assert copy.range(b"\x00", b"\x00", revision) == store.range(b"\x00", b"\x00", revision)
        if revision > 20:
            assert copy.events_at(revision) == store.events_at(revision)


def test_a_view_is_unchanged_by_later_writes_and_compaction() -> None:
    store = MVCCStore()
    for i in range(10):
        put(store, b"k%d" % (i % 3), b"%d" % i)
    view = store.view()
    expected = (list(view.base()), [(rev, list(events)) for rev, events in view.history()])
    put(store, b"k0", b"later")
    delete(store, b"k1")
    store.compact(store.revision)
    with pytest.raises(Compacted):
        store.range(b"k0", revision=5)  # compaction takes effect for reads at once...
    assert (list(view.base()), [(rev, list(events)) for rev, events in view.history()]) == expected
    assert store.first_revision == 2  # ...but memory is reclaimed only after the view is released
    view.release()
    compacted_at = store.revision
    put(store, b"k2", b"next")  # the next write resumes reclaiming
    assert store.first_revision == compacted_at


def test_a_large_compaction_is_reclaimed_in_bounded_steps() -> None:
    from corral.store.mvcc import RECLAIM_BATCH_REVISIONS

    store = MVCCStore()
    for i in range(3 * RECLAIM_BATCH_REVISIONS):
        put(store, b"k%d" % (i % 50))
    target = store.revision
    store.compact(target)
    assert store.first_revision == 2 + RECLAIM_BATCH_REVISIONS
    put(store, b"other")
    put(store, b"other")
    put(store, b"other")
    assert store.first_revision == target
    assert store.key_count() == 51
    assert all(len(store._index[b"k%d" % i].generations[0].kvs) == 1 for i in range(50))


def _changes(events: list[Event]) -> list[tuple[EventType, bytes, bytes, bool]]:
    """(type, key, value, has prev_kv) of each event."""
    return [(e.type, e.kv.key, e.kv.value, e.prev_kv is not None) for e in events]


def test_history_at_the_compaction_revision_is_what_etcd_keeps() -> None:
    # etcd keeps, at the compaction revision, each key's last change there if it is a put, without prev_kv
    store = MVCCStore()
    txn = store.write()
    for key in (b"a", b"d", b"k", b"m"):
        txn.put(key, b"1")
    txn.commit()  # 2
    txn = store.write()
    txn.put(b"k", b"2")  # an update: kept, without its prev_kv
    txn.delete_range(b"d")  # a delete: gone
    txn.put(b"a", b"2")
    txn.delete_range(b"a", b"b")  # put, then deleted in the same revision (a from-key delete through the
    # API: etcd's duplicate-key check misses those): nothing of it is kept
    txn.delete_range(b"m")
    txn.put(b"m", b"2")  # deleted, then created again in the same revision: the new put is kept
    txn.put(b"n", b"1")  # created: kept
    assert txn.commit() == 3
    put(store, b"x")  # 4
    committed = store.events_at(3)
    assert store.retained_events(3) == committed  # before the compaction, as committed
    store.compact(3)
    assert _changes(store.retained_events(3)) == [
        (EventType.PUT, b"k", b"2", False), (EventType.PUT, b"m", b"2", False), (EventType.PUT, b"n", b"1", False),
    ]  # fmt: skip
    assert store.events_at(3) == committed  # as committed: deletes and prev_kv still there
    assert store.retained_events(4) == store.events_at(4)  # every later revision as committed
    assert store.retained_events(2) == []  # compacted
    # a range at the compaction revision sees the same keys; a delete never shows in a range anyway
    assert [(kv.key, kv.value) for kv in store.range(b"\x00", b"\x00", 3)[0]] == [
        (b"k", b"2"), (b"m", b"2"), (b"n", b"1"),
    ]  # fmt: skip


def test_a_restored_store_keeps_the_same_history_at_the_compaction_revision() -> None:
    store = MVCCStore()
    put(store, b"k", b"1")  # 2
    put(store, b"d", b"1")  # 3
    txn = store.write()
    txn.put(b"k", b"2")
    txn.delete_range(b"d")
    txn.commit()  # 4
    put(store, b"x")  # 5
    store.compact(4)
    view = store.view()
    history = [(rev, [(e.type, e.kv) for e in events]) for rev, events in view.history()]
    # the snapshot carries the revision as committed (history blocks never change once written)
    assert [(rev, [(kind, kv.key) for kind, kv in changes]) for rev, changes in history] == [
        (4, [(EventType.PUT, b"k"), (EventType.DELETE, b"d")]), (5, [(EventType.PUT, b"x")]),
    ]  # fmt: skip
    copy = MVCCStore.rebuild(view.base_revision, view.base(), history, store.revision, store.compact_revision)
    view.release()
    for revision in (4, 5):
        assert copy.retained_events(revision) == store.retained_events(revision)
    assert _changes(copy.retained_events(4)) == [(EventType.PUT, b"k", b"2", False)]
