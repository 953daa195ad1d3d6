"""KeyIndex generations, walked through the way etcd's key_index.go documents them."""

from corral.store.key_index import KeyIndex
from corral.store.types import KeyValue


def kv(mod: int, create: int, version: int) -> KeyValue:
    return KeyValue(b"foo", create, mod, version, f"v{mod}".encode())


def history() -> KeyIndex:
    # put@2 put@4 delete@6 | put@8 put@10 delete@12 | put@14
    index = KeyIndex()
    index.put(kv(2, 2, 1))
    index.put(kv(4, 2, 2))
    index.tombstone(6)
    index.put(kv(8, 8, 1))
    index.put(kv(10, 8, 2))
    index.tombstone(12)
    index.put(kv(14, 14, 1))
    return index


def test_reads_at_every_revision() -> None:
    index = history()
    expected = {1: None, 2: 2, 3: 2, 4: 4, 5: 4, 6: None, 7: None, 8: 8, 9: 8, 10: 10, 11: 10, 12: None,
                13: None, 14: 14, 20: 14}  # fmt: skip
    for revision, mod in expected.items():
        found = index.at(revision)
        assert (found.mod_revision if found else None) == mod, revision
    assert index.current() == kv(14, 14, 1)


def test_a_deleted_key_has_no_current_value() -> None:
    index = KeyIndex()
    index.put(kv(2, 2, 1))
    index.tombstone(3)
    assert index.current() is None
    assert index.at(2) == kv(2, 2, 1)


def test_compaction_keeps_what_reads_at_or_after_it_can_see() -> None:
    index = history()
    assert index.compact(5)
    # the first generation is still alive at 5 (its tombstone is at 6): 4 stays readable
    assert index.at(5) == kv(4, 2, 2)
    assert [len(g.kvs) for g in index.generations] == [1, 2, 1]
    assert index.compact(7)  # first generation ended at 6 <= 7: gone
    assert [g.created for g in index.generations] == [8, 14]
    assert index.compact(11)
    assert index.at(11) == kv(10, 8, 2)
    assert [len(g.kvs) for g in index.generations] == [1, 1]
    assert index.compact(14)
    assert [g.created for g in index.generations] == [14]
    for revision in range(14, 20):
        assert index.at(revision) == kv(14, 14, 1)


def test_compaction_of_a_dead_key_leaves_nothing() -> None:
    index = KeyIndex()
    index.put(kv(2, 2, 1))
    index.tombstone(3)
    assert index.compact(2)
    assert not index.compact(3)
