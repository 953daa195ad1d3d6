"""The watch hub: watchers over key ranges, fed from the MVCC store's history.

Every watcher is a cursor: the next revision it needs. When a revision commits, the hub wakes the
watchers whose range it touches; each reads the events it has not seen from the store's history, in
revision order, a whole revision at a time. A watcher whose consumer is slow simply reads further back
next time, so it never loses an event, never holds up another watcher, and holds no buffer of its own
(etcd's unsynced watchers catching up from the store, without the separate groups). A watcher whose
next revision was compacted away learns the compaction revision and ends; one that catches up from
exactly the compaction revision gets that revision as etcd's compacted history holds it (see
`MVCCStore.retained_events`).

Like etcd, a watcher that starts in the past gets its history in batches of up to 1000 revisions (the
header carrying the current revision); once caught up it gets one batch per revision.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from corral.store.mvcc import FROM_KEY, MVCCStore
from corral.store.types import Event, EventType

HISTORY_BATCH_REVISIONS = 1000


@dataclass(frozen=True, slots=True)
class WatchSpec:
    """What to watch: [key, range_end) (empty range_end: the key alone; "\\0": every key >= key)."""

    key: bytes
    range_end: bytes = b""
    start_revision: int = 0  # 0: from the next revision
    no_put: bool = False
    no_delete: bool = False
    prev_kv: bool = False


@dataclass(slots=True)
class WatchBatch:
    """Events of whole revisions for one watcher. `revision` is the header revision: the last revision
    the batch covers when live, the store's revision when catching up. A nonzero `compact_revision` means
    the watcher needed compacted history and has ended."""

    revision: int
    events: list[Event] = field(default_factory=list)
    compact_revision: int = 0
    through: int = 0  # the last revision the batch covers: resume after it


class Watcher:
    """One watch's cursor. `next()` waits for and returns the next batch of matching events."""

    def __init__(self, hub: WatchHub, spec: WatchSpec, next_revision: int) -> None:
        self._hub = hub
        self.spec = spec
        self.next_revision = next_revision
        self.catching_up = True  # until it has read up to the store's revision once
        self.closed = False
        self._wakeup = asyncio.Event()
        self._wakeup.set()
        # The first revision that concerned this watcher since it last read. Every revision before it
        # held nothing for a live watcher, so it may skip them, even once they are compacted.
        self._first_match = 0

    def matches(self, key: bytes) -> bool:
        spec = self.spec
        if not spec.range_end:
            return key == spec.key
        if spec.range_end == FROM_KEY:
            return key >= spec.key
        return spec.key <= key < spec.range_end

    async def next(self) -> WatchBatch:
        while True:
            if self.closed:
                raise WatcherClosed()
            batch = self._read()
            if batch is not None:
                return batch
            self._wakeup.clear()
            await self._wakeup.wait()

    @property
    def synced(self) -> bool:
        """Caught up, waiting for the next matching revision (what etcd calls a synced watcher)."""
        return not self.catching_up and not self._wakeup.is_set()

    def wake(self, revision: int = 0) -> None:
        """A revision touching this watcher's range was committed (0: re-read from the store)."""
        if revision and not self._first_match:
            self._first_match = revision
        self._wakeup.set()

    def passed_over(self, revision: int) -> None:
        """Every revision up to `revision` was committed without concerning this watcher, if it is live
        and waiting with nothing to read: it need not read them (they may be compacted later)."""
        if not self.catching_up and not self._first_match and not self._wakeup.is_set():
            self.next_revision = max(self.next_revision, revision + 1)

    def close(self) -> None:
        self.closed = True
        self._hub.remove(self)
        self._wakeup.set()

    def _read(self) -> WatchBatch | None:
        """The next batch from the store's history, or None when there is nothing new yet."""
        store = self._hub.store
        current = store.revision
        if not self.catching_up and self._first_match > self.next_revision:
            self.next_revision = self._first_match
        self._first_match = 0
        while self.next_revision <= current:
            if self.next_revision < store.compact_revision:
                self.close()
                return WatchBatch(current, compact_revision=store.compact_revision)
            catching_up = self.catching_up
            last = min(current if catching_up else self.next_revision, self.next_revision + HISTORY_BATCH_REVISIONS - 1)
            # Catching up, it reads history as etcd's unsynced watchers read the backend, which a compaction
            # has pruned at the compaction revision (no deletes, no prev_kv there); live, it gets revisions
            # as committed, as etcd hands a synced watcher the changes of each commit.
            read = store.retained_events if catching_up else store.events_at
            events = [e for rev in range(self.next_revision, last + 1) for e in self._select(read(rev))]
            self.next_revision = last + 1
            if self.next_revision > current:
                self.catching_up = False
            if events:
                return WatchBatch(current if catching_up else last, events, through=last)
        return None

    def _select(self, events: list[Event]) -> list[Event]:
        spec = self.spec
        selected = []
        for event in events:
            if not self.matches(event.kv.key):
                continue
            if (spec.no_put and event.type is EventType.PUT) or (spec.no_delete and event.type is EventType.DELETE):
                continue
            selected.append(event if spec.prev_kv or event.prev_kv is None else Event(event.type, event.kv))
        return selected


class WatcherClosed(Exception):
    """The watcher was cancelled or ended (its history was compacted)."""


class WatchHub:
    """Watchers of one state machine's store. Wakes the watchers a committed revision concerns."""

    def __init__(self, store: MVCCStore) -> None:
        self.store = store
        self._by_key: dict[bytes, set[Watcher]] = {}  # single-key watchers, found by a dict lookup
        self._ranges: set[Watcher] = set()  # range and prefix watchers, each checked per commit
        self._ids = itertools.count()
        store.observers.append(self._on_commit)

    def attach(self, store: MVCCStore) -> None:
        """Follow a new store (a snapshot replaced the state): every watcher re-reads from it."""
        for watcher in self.watchers():
            watcher.passed_over(self.store.revision)
        self.store = store
        store.observers.append(self._on_commit)
        for watcher in self.watchers():
            watcher.wake()

    def watch(self, spec: WatchSpec) -> Watcher:
        start = spec.start_revision if spec.start_revision > 0 else self.store.revision + 1
        watcher = Watcher(self, spec, start)
        watcher.catching_up = start <= self.store.revision
        if spec.range_end:
            self._ranges.add(watcher)
        else:
            self._by_key.setdefault(spec.key, set()).add(watcher)
        return watcher

    def remove(self, watcher: Watcher) -> None:
        self._ranges.discard(watcher)
        same_key = self._by_key.get(watcher.spec.key)
        if same_key is not None:
            same_key.discard(watcher)
            if not same_key:
                del self._by_key[watcher.spec.key]

    def watchers(self) -> list[Watcher]:
        return [*self._ranges, *(w for group in self._by_key.values() for w in group)]

    def __len__(self) -> int:
        return len(self._ranges) + sum(len(group) for group in self._by_key.values())

    def _on_commit(self, revision: int, events: list[Event]) -> None:
        if self._by_key:
            for event in events:
                for watcher in self._by_key.get(event.kv.key, ()):
                    watcher.wake(revision)
        for watcher in self._ranges:
            if any(watcher.matches(event.kv.key) for event in events):
                watcher.wake(revision)
