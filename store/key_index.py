"""A key's life as generations of versions, in the manner of etcd's `key_index.go`.

A generation starts with the put that creates the key and ends with the delete (tombstone) that
removes it; a put after the delete starts a new generation with version 1. Each generation keeps
the key's values in revision order, so a read at any retained revision is a binary search.

Within one revision a key changes at most once (etcd rejects txns that write a key twice), so the
main revision alone orders a key's versions.
"""

from __future__ import annotations

from bisect import bisect_right
from operator import attrgetter

from .types import KeyValue

_MOD_REVISION = attrgetter("mod_revision")


class Generation:
    __slots__ = ("kvs", "tombstone")

    def __init__(self, first: KeyValue) -> None:
        self.kvs: list[KeyValue] = [first]
        self.tombstone = 0  # revision of the delete that ended this generation; 0 while alive

    @property
    def created(self) -> int:
        return self.kvs[0].create_revision


class KeyIndex:
    __slots__ = ("generations",)

    def __init__(self) -> None:
        self.generations: list[Generation] = []

    def current(self) -> KeyValue | None:
        """The live value, or None when the key is deleted."""
        last = self.generations[-1]
        return None if last.tombstone else last.kvs[-1]

    def at(self, revision: int) -> KeyValue | None:
        """The value visible at `revision`, or None if the key did not exist then."""
        for generation in reversed(self.generations):
            kvs = generation.kvs
            if kvs[0].mod_revision > revision:
                continue
            if generation.tombstone and generation.tombstone <= revision:
                return None
            return kvs[bisect_right(kvs, revision, key=_MOD_REVISION) - 1]
        return None

    def put(self, kv: KeyValue) -> None:
        last = self.generations[-1] if self.generations else None
        if last is None or last.tombstone:
            self.generations.append(Generation(kv))
        else:
            last.kvs.append(kv)

    def tombstone(self, revision: int) -> None:
        self.generations[-1].tombstone = revision

    def compact(self, revision: int) -> bool:
        """Forget what no read at or after `revision` can see. Returns False if nothing is left."""
        kept: list[Generation] = []
        for generation in self.generations:
            if generation.tombstone and generation.tombstone <= revision:
                continue  # dead before the compaction point: no read can reach it any more
            kvs = generation.kvs
            first_kept = bisect_right(kvs, revision, key=_MOD_REVISION) - 1
            if first_kept > 0:
                del kvs[:first_kept]
            kept.append(generation)
        self.generations = kept
        return bool(kept)
