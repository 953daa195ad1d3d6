"""The revisioned key-value store: a sorted key index over key generations, plus per-revision history.

One global revision counts changes; every write transaction that changes something adds exactly one.
Reads at any revision since the last compaction see the keys as they were then. The history keeps the
events of every retained revision, in order, for watchers and for snapshots.

Nothing here reads a clock or draws a random number: applying the same writes in the same order gives
the same store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from sortedcontainers import SortedDict

from .errors import Compacted, FutureRevision
from .key_index import KeyIndex
from .types import Event, EventType, KeyValue

FROM_KEY = b"\x00"  # a range_end of "\0" means "every key >= key"
RECLAIM_BATCH_REVISIONS = 1000  # revisions of compacted history freed per step


class MVCCStore:
    """Keys, their versions, and the history of changes since the last compaction."""

    def __init__(self) -> None:
        self._index: SortedDict[bytes, KeyIndex] = SortedDict()
        self.revision = 1  # an empty store is at revision 1; the first write makes 2
        self.compact_revision = -1  # etcd starts below any revision, so compacting at 0 once is allowed
        self._history: dict[int, list[Event]] = {}
        self._history_start = 2  # the lowest revision whose events are kept
        self._views = 0  # open snapshot views; while any is open, compacted memory is kept
        # Called with (revision, events) after each revision is committed: leases track their keys
        # through this, and the watch hub delivers events from it.
        self.observers: list[Callable[[int, list[Event]], None]] = []

    # -- reads -------------------------------------------------------------------------------------

    def key_count(self) -> int:
        return len(self._index)

    def get(self, key: bytes) -> KeyValue | None:
        index = self._index.get(key)
        return index.current() if index is not None else None

    def range(
        self, key: bytes, range_end: bytes = b"", revision: int = 0, limit: int = 0, count_only: bool = False
    ) -> tuple[list[KeyValue], int, int]:
        """Keys in [key, range_end) at `revision` (<= 0: latest): (kvs up to `limit`, count, read revision)."""
        return self._range(self.revision, key, range_end, revision, limit, count_only)

    def _range(
        self, current: int, key: bytes, range_end: bytes, revision: int, limit: int, count_only: bool
    ) -> tuple[list[KeyValue], int, int]:
        if revision > current:
            raise FutureRevision()
        at = current if revision <= 0 else revision
        if at < self.compact_revision:
            raise Compacted()
        indexes = self._select(key, range_end)
        kvs: list[KeyValue] = []
        count = 0
        if at == current:
            found: Iterator[KeyValue | None] = (index.current() for index in indexes)
        else:
            found = (index.at(at) for index in indexes)
        if count_only:
            return kvs, sum(1 for kv in found if kv is not None), at
        for kv in found:
            if kv is None:
                continue
            count += 1
            if limit <= 0 or count <= limit:
                kvs.append(kv)
        return kvs, count, at

    def _select(self, key: bytes, range_end: bytes) -> Iterable[KeyIndex]:
        if not range_end:
            index = self._index.get(key)
            return (index,) if index is not None else ()
        if range_end == FROM_KEY:
            keys = self._index.irange(minimum=key)
        elif range_end <= key:
            return ()
        else:
            keys = self._index.irange(key, range_end, inclusive=(True, False))
        return map(self._index.__getitem__, keys)

    def current_leased(self) -> Iterator[KeyValue]:
        """Every live key that is attached to a lease (a scan: for rebuilding lease tables)."""
        for index in self._index.values():
            kv = index.current()
            if kv is not None and kv.lease:
                yield kv

    def events_at(self, revision: int) -> list[Event]:
        """The changes made at `revision`, as committed (empty for a revision outside the retained history)."""
        if revision < self.compact_revision:
            return []
        return self._history.get(revision, [])

    def retained_events(self, revision: int) -> list[Event]:
        """The changes made at `revision` as a read of compacted history finds them, as etcd's does.

        Only the compaction revision itself differs from `events_at`. etcd's compaction keeps, of each key,
        the newest version at or below the compaction revision of a generation still alive after it
        (`keyIndex.compact`), and deletes every other revision up to that point from its backend, which is
        what a watch catching up reads. So at the compaction revision only the last change of each key
        survives, and only if it is a put: a delete there is gone, and so is a put the same revision then
        deleted (a txn can change a key twice). None of them has a prev_kv either: etcd reads it at
        mod_revision - 1, which is compacted.
        """
        events = self.events_at(revision)
        if revision != self.compact_revision or not events:
            return events
        last = {event.kv.key: event for event in events}  # each key's last change in the revision
        return [Event(e.type, e.kv) for e in events if e.type is EventType.PUT and last[e.kv.key] is e]

    @property
    def first_revision(self) -> int:
        return self._history_start

    # -- writes ------------------------------------------------------------------------------------

    def write(self) -> WriteTxn:
        return WriteTxn(self)

    def _put(self, revision: int, key: bytes, value: bytes, lease: int) -> Event:
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = KeyIndex()
        prev = index.current() if index.generations else None
        if prev is None:
            kv = KeyValue(key, revision, revision, 1, value, lease)
        else:
            kv = KeyValue(key, prev.create_revision, revision, prev.version + 1, value, lease)
        index.put(kv)
        return Event(EventType.PUT, kv, prev)

    def _delete(self, revision: int, index: KeyIndex, prev: KeyValue) -> Event:
        index.tombstone(revision)
        return Event(EventType.DELETE, KeyValue(prev.key, 0, revision, 0), prev)

    def _commit(self, events: list[Event]) -> int:
        if events:
            self.revision += 1
            self._history[self.revision] = events
            if self._history_start < self.compact_revision:
                self._reclaim_step()
            for observer in self.observers:
                observer(self.revision, events)
        return self.revision

    # -- compaction --------------------------------------------------------------------------------

    def compact(self, revision: int) -> None:
        """Forget every version no read at or after `revision` can see, and the history before it.

        Reads below `revision` fail at once. The memory is reclaimed in bounded steps, one with the
        compaction and one with each later write (as etcd compacts in batches), so a large compaction
        never stalls apply; the steps pause while a snapshot view is open, since a view relies on the
        history it started with.
        """
        if revision <= self.compact_revision:
            raise Compacted()
        if revision > self.revision:
            raise FutureRevision()
        self.compact_revision = revision
        self._reclaim_step()

    def _reclaim_step(self, max_revisions: int = RECLAIM_BATCH_REVISIONS) -> None:
        target = self.compact_revision
        start = self._history_start
        if start >= target or self._views:
            return
        end = min(target, start + max_revisions)  # reclaim revisions [start, end), and `target` itself
        touched: set[bytes] = set()
        for rev in range(start, end):
            touched.update(event.kv.key for event in self._history.pop(rev, ()))
        if end == target:
            touched.update(event.kv.key for event in self._history.get(target, ()))
        self._history_start = end
        for key in touched:
            index = self._index.get(key)
            if index is not None and not index.compact(target):
                del self._index[key]

    def reclaim_all(self) -> None:
        """Finish reclaiming compacted memory now (tests and tools; the store does it in steps)."""
        while self._history_start < self.compact_revision and not self._views:
            self._reclaim_step(1 << 30)

    # -- snapshots ---------------------------------------------------------------------------------

    def view(self) -> StoreView:
        """A point-in-time view of the store that stays valid while writes go on, until released.

        Versions and history at or below the view's revision never change (MVCC), and reclaiming
        compacted memory waits for the view's release, so another thread may read the view while the
        store keeps applying writes.
        """
        view = StoreView(self, self.revision, self.compact_revision, self._history_start, list(self._index))
        self._views += 1
        return view

    def _release(self) -> None:
        self._views -= 1

    @classmethod
    def rebuild(
        cls,
        base_revision: int,
        base: Iterable[KeyValue],
        history: Iterable[tuple[int, Iterable[tuple[EventType, KeyValue]]]],
        revision: int,
        compact_revision: int,
    ) -> MVCCStore:
        """The inverse of a view's `base` and `history`: the base, then the history replayed on top.

        The base revision's own events are kept as they are, without prev_kv: what came before them
        is compacted, so (as in etcd) no reader can ask for it.
        """
        store = cls()
        for kv in base:
            index = store._index[kv.key] = KeyIndex()
            index.put(kv)
        for rev, changes in history:
            if rev <= base_revision:
                store._history[rev] = [Event(kind, kv) for kind, kv in changes]
                continue
            store.revision = rev - 1
            txn = WriteTxn(store)
            for kind, kv in changes:
                if kind is EventType.PUT:
                    txn.events.append(store._replay_put(kv))
                else:
                    txn.delete_range(kv.key)
            store._history[rev] = txn.events
        store.revision = revision
        store.compact_revision = compact_revision
        store._history_start = base_revision
        store.reclaim_all()
        return store

    def _replay_put(self, kv: KeyValue) -> Event:
        index = self._index.get(kv.key)
        if index is None:
            index = self._index[kv.key] = KeyIndex()
        prev = index.current() if index.generations else None
        index.put(kv)
        return Event(EventType.PUT, kv, prev)


class WriteTxn:
    """A write transaction: every change it makes shares one new revision.

    Reads through the transaction see its own writes, as etcd's do. The revision becomes visible to
    others when `commit` runs; since apply is single-threaded, nothing else reads in between.
    """

    __slots__ = ("_store", "begin_revision", "events")

    def __init__(self, store: MVCCStore) -> None:
        self._store = store
        self.begin_revision = store.revision
        self.events: list[Event] = []

    @property
    def revision(self) -> int:
        """The revision reads inside the transaction see: one past the start once anything changed."""
        return self.begin_revision + 1 if self.events else self.begin_revision

    def get(self, key: bytes) -> KeyValue | None:
        return self._store.get(key)

    def range(
        self, key: bytes, range_end: bytes = b"", revision: int = 0, limit: int = 0, count_only: bool = False
    ) -> tuple[list[KeyValue], int, int]:
        return self._store._range(self.revision, key, range_end, revision, limit, count_only)

    def put(self, key: bytes, value: bytes, lease: int = 0) -> Event:
        event = self._store._put(self.begin_revision + 1, key, value, lease)
        self.events.append(event)
        return event

    def delete_range(self, key: bytes, range_end: bytes = b"") -> list[Event]:
        store = self._store
        doomed = [(index, kv) for index in store._select(key, range_end) if (kv := index.current()) is not None]
        revision = self.begin_revision + 1
        deleted = [store._delete(revision, index, kv) for index, kv in doomed]
        self.events.extend(deleted)
        return deleted

    def commit(self) -> int:
        return self._store._commit(self.events)


class StoreView:
    """What a snapshot holds: the keys at the first retained revision (the base) and every retained
    revision's events after it, as of the moment the view was taken. See `MVCCStore.view`."""

    __slots__ = ("_store", "revision", "compact_revision", "base_revision", "_keys", "_released")

    def __init__(
        self, store: MVCCStore, revision: int, compact_revision: int, base_revision: int, keys: list[bytes]
    ) -> None:
        self._store = store
        self.revision = revision
        self.compact_revision = compact_revision
        self.base_revision = base_revision
        self._keys = keys
        self._released = False

    def base(self) -> Iterator[KeyValue]:
        indexes = self._store._index
        at = self.base_revision
        for key in self._keys:
            index = indexes.get(key)
            if index is not None and (kv := index.at(at)) is not None:
                yield kv

    def history(self, first: int = 0, last: int = 0) -> Iterator[tuple[int, list[Event]]]:
        """The events of revisions [first, last] (default: all the view holds)."""
        history = self._store._history
        for rev in range(max(first, self.base_revision), min(last or self.revision, self.revision) + 1):
            yield rev, history[rev]

    def release(self) -> None:
        """Call on the thread that applies writes, once the view has been written out."""
        if not self._released:
            self._released = True
            self._store._release()
