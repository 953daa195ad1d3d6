"""Property test of the watch hub, in process: random writes to a `KVStateMachine`, watchers of a `WatchHub`
read by fast and by slow consumers, and what each consumer got checked against a model's history.

Steps (drawn by hypothesis): puts, deletes, delete ranges, txns that put several keys (and delete others) in
one revision, some with a from-key delete before or after the puts (a key may then change twice in the
revision, as etcd 3.4 allows), compactions, snapshot round trips (the state machine restores its own
snapshot and the hub follows the new store, as on a follower), new watchers (any range, NOPUT / NODELETE,
prev_kv, from now, from revision 1, from a random past or future revision), reads by a slow consumer, and
whether the fast consumers get to run after the step. A fast consumer is a task looping on `watcher.next()`,
like the HTTP pump; a slow one reads (everything it can) only at its read steps. At the end every consumer
reads what is left.

For every consumer, the batches it got must be, in order, the model's history from its start revision
filtered by its range and filters (prev_kv only if asked for): each revision once, whole, in revision order,
with a header revision no lower than the batch's last event. Two exceptions: a consumer catching up from the
past may get the compaction revision as etcd's compaction leaves it (each key's last change, if a put, without
prev_kv; nothing at all if that leaves nothing for it); and any consumer may get the first revision of a store
restored from a snapshot without prev_kv (the snapshot does not carry it). A consumer that was told of a
compaction got a prefix of that history and nothing after the compaction message, and the compaction revision
is one that was done and is above the revision it needed next.

`test_a_quiet_live_watcher_is_not_compacted` adds etcd's rule for a synced watcher: one that is waiting
with nothing to read is never ended by a compaction.

`CORRAL_WATCH_EXAMPLES=N` runs N examples (default 150).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from corral.store import kv
from corral.store.state_machine import KVStateMachine
from corral.store.types import (
    CompactionRequest,
    DeleteRangeRequest,
    Event,
    EventType,
    KeyValue,
    PutRequest,
    TxnRequest,
)
from corral.watch import hub as hub_module
from corral.watch.hub import Watcher, WatcherClosed, WatchHub, WatchSpec
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("CORRAL_WATCH_EXAMPLES", "150"))
KEYS = (b"a", b"a/1", b"a/2", b"b", b"b/1", b"c", b"\xff")
ENDS = (b"", b"", b"\x00", b"a0", b"b", b"c", b"z", b"a")
VALUES = (b"", b"x", b"yy")

Step = tuple[Any, ...]

# ---- steps ---------------------------------------------------------------------------------------------

keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)
writes = st.one_of(
    st.tuples(st.just("put"), keys, values),
    st.tuples(st.just("delete"), keys, st.just(b"")),
    st.tuples(st.just("delete"), keys, st.sampled_from(ENDS)),
    st.tuples(
        st.just("txn"),
        st.lists(st.tuples(keys, values), min_size=2, max_size=4, unique_by=lambda kv: kv[0]),
        st.lists(keys, max_size=2),
        st.one_of(st.none(), keys),  # a from-key delete from this key...
        st.booleans(),  # ...before the puts (else after them)
    ),
)
steps = st.one_of(
    writes,
    writes,
    writes,
    st.tuples(st.just("compact"), st.floats(0.0, 1.0)),
    st.tuples(st.just("snapshot")),
    st.tuples(
        st.just("watch"),
        keys,
        st.sampled_from(ENDS),
        st.sampled_from(("now", "first", "past", "future")),
        st.floats(0.0, 1.0),
        st.booleans(),  # no_put
        st.booleans(),  # no_delete
        st.booleans(),  # prev_kv
        st.booleans(),  # slow
    ),
    st.tuples(st.just("read"), st.integers(0, 7)),
)
scenarios = st.tuples(
    st.lists(st.tuples(steps, st.booleans()), min_size=8, max_size=80),  # (step, let fast consumers run after it)
    st.sampled_from((1, 2, 3, 1000)),  # revisions per history batch
)


# ---- the model -----------------------------------------------------------------------------------------


class Model:
    """The key space and, per revision, the events etcd would report (prev_kv always set)."""

    def __init__(self) -> None:
        self.kvs: dict[bytes, KeyValue] = {}
        self.revision = 1
        self.history: dict[int, list[Event]] = {}
        self.compactions: list[int] = []

    def write(self, ops: list[tuple[str, bytes, bytes]]) -> None:
        """("put", key, value) and ("delete", key, range_end) in order, as one revision if anything changed."""
        rev = self.revision + 1
        events = []
        for kind, key, arg in ops:
            if kind == "put":
                prev = self.kvs.get(key)
                new = KeyValue(key, prev.create_revision if prev else rev, rev, prev.version + 1 if prev else 1, arg)
                self.kvs[key] = new
                events.append(Event(EventType.PUT, new, prev))
                continue
            for k in sorted(k for k in self.kvs if in_range(k, key, arg)):
                events.append(Event(EventType.DELETE, KeyValue(k, 0, rev, 0), self.kvs.pop(k)))
        if events:
            self.revision = rev
            self.history[rev] = events


def in_range(k: bytes, key: bytes, end: bytes) -> bool:
    if not end:
        return k == key
    if end == b"\x00":
        return k >= key
    return key <= k < end


def select(events: list[Event], spec: WatchSpec) -> list[Event]:
    return [
        e if spec.prev_kv else Event(e.type, e.kv)
        for e in events
        if in_range(e.kv.key, spec.key, spec.range_end)
        and not (spec.no_put and e.type is EventType.PUT)
        and not (spec.no_delete and e.type is EventType.DELETE)
    ]


def expected(model: Model, spec: WatchSpec, start: int) -> list[tuple[int, list[Event]]]:
    out = []
    for rev in sorted(r for r in model.history if r >= start):
        events = select(model.history[rev], spec)
        if events:
            out.append((rev, events))
    return out


def retained(model: Model, spec: WatchSpec, rev: int) -> list[Event]:
    """A compaction revision as etcd's compacted history holds it: each key's last change there, if it is a
    put, without prev_kv (the versions before it are compacted)."""
    events = model.history.get(rev, [])
    last = {e.kv.key: e for e in events}
    return select([Event(e.type, e.kv) for e in events if e.type is EventType.PUT and last[e.kv.key] is e], spec)


# ---- consumers -----------------------------------------------------------------------------------------


@dataclass
class Consumer:
    watcher: Watcher
    spec: WatchSpec
    start: int  # the first revision it wants (the hub's reading of start_revision 0: current + 1)
    slow: bool
    past_start: bool  # its start was at or below the store's revision: it had history to read first
    # (batch, the store's revision, compaction revision and first retained revision when it was read)
    batches: list[tuple[Any, int, int, int]] = field(default_factory=list)
    compact_revision: int = 0
    read_once: bool = False  # has read everything it could at least once since it was created
    compactions_before_first_read: list[int] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def take(self, batch: Any, machine: KVStateMachine) -> None:
        assert self.compact_revision == 0, "a batch after the compaction message"
        store = machine.store
        self.batches.append((batch, store.revision, store.compact_revision, store.first_revision))
        if batch.compact_revision:
            self.compact_revision = batch.compact_revision


async def fast(consumer: Consumer, machine: KVStateMachine) -> None:
    while True:
        try:
            batch = await consumer.watcher.next()
        except WatcherClosed:
            return
        consumer.take(batch, machine)
        if batch.compact_revision:
            return


async def drain(consumer: Consumer, machine: KVStateMachine) -> None:
    """Read every batch there is now, without waiting for more."""
    while not consumer.compact_revision:
        task = asyncio.ensure_future(consumer.watcher.next())
        await asyncio.sleep(0)  # the task runs once: it returns a batch or waits for a wakeup
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            break
        consumer.take(task.result(), machine)
    consumer.read_once = True


async def let_fast_consumers_run(consumers: list[Consumer]) -> None:
    for _ in range(3):
        await asyncio.sleep(0)
    for consumer in consumers:
        if not consumer.slow:
            consumer.read_once = True


# ---- running a scenario --------------------------------------------------------------------------------


async def run(scenario: tuple[list[tuple[Step, bool]], int]) -> tuple[Model, list[Consumer]]:
    steps_, _ = scenario
    machine = KVStateMachine()
    hub = WatchHub(machine.store)
    machine.restore_listeners.append(hub.attach)
    model = Model()
    observed: dict[int, list[Event]] = {}

    def observe(revision: int, events: list[Event]) -> None:
        observed[revision] = list(events)

    machine.store.observers.append(observe)
    machine.restore_listeners.append(lambda store: store.observers.append(observe))
    consumers: list[Consumer] = []

    def add(spec: WatchSpec, slow: bool) -> None:
        watcher = hub.watch(spec)
        start = spec.start_revision if spec.start_revision > 0 else machine.store.revision + 1
        consumer = Consumer(watcher, spec, start, slow, past_start=start <= machine.store.revision)
        if not slow:
            consumer.task = asyncio.create_task(fast(consumer, machine))
        consumers.append(consumer)

    # Always: everything from revision 1, read fast and read slowly.
    add(WatchSpec(b"\x00", b"\x00", start_revision=1, prev_kv=True), slow=False)
    add(WatchSpec(b"\x00", b"\x00", start_revision=1), slow=True)
    await let_fast_consumers_run(consumers)

    for step, run_fast in steps_:
        kind = step[0]
        if kind == "put":
            machine.apply_command(PutRequest(step[1], step[2]))
            model.write([("put", step[1], step[2])])
        elif kind == "delete":
            machine.apply_command(DeleteRangeRequest(step[1], step[2]))
            model.write([("delete", step[1], step[2])])
        elif kind == "txn":
            _, puts, deletes, from_key, from_key_first = step
            changes = [("put", k, v) for k, v in puts]
            changes += [("delete", k, b"") for k in deletes if k not in {key for key, _ in puts}]
            if from_key is not None:
                # etcd 3.4's duplicate-key check misses from-key deletes, so a put key may change twice
                from_key_delete = ("delete", from_key, b"\x00")
                changes = [from_key_delete, *changes] if from_key_first else [*changes, from_key_delete]
            ops = tuple(PutRequest(k, a) if kind == "put" else DeleteRangeRequest(k, a) for kind, k, a in changes)
            result = machine.apply_command(TxnRequest(success=ops))
            assert not isinstance(result, Exception), result
            model.write(changes)
        elif kind == "compact":
            low = max(machine.store.compact_revision + 1, 1)
            if low <= model.revision:
                revision = low + round(step[1] * (model.revision - low))
                kv.compact(machine.store, CompactionRequest(revision))
                model.compactions.append(revision)
                for consumer in consumers:
                    if not consumer.read_once:
                        consumer.compactions_before_first_read.append(revision)
        elif kind == "snapshot":
            snapshot = machine.snapshot()
            data = snapshot.serialize()
            snapshot.release()
            machine.restore(data)
        elif kind == "watch":
            _, key, end, start_kind, where, no_put, no_delete, prev_kv, slow = step
            current = machine.store.revision
            start = {
                "now": 0,
                "first": 1,
                "past": 1 + round(where * (current - 1)),
                "future": current + 1 + round(where * 3),
            }[start_kind]
            add(WatchSpec(key, end, start, no_put, no_delete, prev_kv), slow)
        elif kind == "read":
            slow_ones = [c for c in consumers if c.slow]
            await drain(slow_ones[step[1] % len(slow_ones)], machine)
        assert machine.store.revision == model.revision, f"after {step}"
        if run_fast:
            await let_fast_consumers_run(consumers)

    await let_fast_consumers_run(consumers)
    for consumer in consumers:
        if consumer.slow:
            await drain(consumer, machine)
    for consumer in consumers:
        if consumer.task is not None:
            consumer.task.cancel()
            await asyncio.gather(consumer.task, return_exceptions=True)
        if consumer.compact_revision:  # it has ended: the next read says so
            with pytest.raises(WatcherClosed):
                await asyncio.wait_for(consumer.watcher.next(), 1.0)
    assert observed == model.history, "the store's events differ from the model's"
    return model, consumers


# ---- checking ------------------------------------------------------------------------------------------


def check(model: Model, consumer: Consumer, strict: bool) -> None:
    spec = consumer.spec
    want = expected(model, spec, consumer.start)
    # Catching up, a consumer may find nothing for it at a compaction revision (etcd's compaction kept
    # nothing there that it watches): it then skips that revision.
    skippable = {c for c in model.compactions if consumer.past_start and not retained(model, spec, c)}
    got: list[tuple[int, list[Event]]] = []
    matched: list[tuple[int, list[Event]]] = []  # the history's revision each one stands for
    i = 0  # the next revision of `want`
    for batch, store_revision, compacted_at, first_revision in consumer.batches:
        if batch.compact_revision:
            continue
        assert batch.events, "an empty batch"
        revisions = [event.kv.mod_revision for event in batch.events]
        assert revisions == sorted(revisions), f"a batch out of revision order: {revisions}"
        assert revisions[-1] <= batch.revision <= store_revision, (revisions, batch.revision, store_revision)
        for rev in dict.fromkeys(revisions):
            if got:
                assert rev > got[-1][0], f"revision {rev} after {got[-1][0]}: repeated or out of order"
            events = [event for event in batch.events if event.kv.mod_revision == rev]
            while i < len(want) and want[i][0] < rev and want[i][0] in skippable:
                i += 1
            assert i < len(want), f"revision {rev}: more events than the history has: {events}"
            wanted_rev, wanted = want[i]
            if rev == wanted_rev and rev in (compacted_at, first_revision):
                # Read as the compaction revision or a restored store's first revision: see the module
                # docstring for the forms it may take.
                forms = [wanted]
                if rev == first_revision:
                    forms.append([Event(e.type, e.kv) for e in wanted])
                if rev == compacted_at and consumer.past_start:
                    forms.append(retained(model, spec, rev))
                if events in forms:
                    wanted = events
            got.append((rev, events))
            matched.append((wanted_rev, wanted))
            i += 1
    assert got == matched, f"not the history from {consumer.start}:\n got  {got}\n want {want}"
    rest = want[i:]
    if not consumer.compact_revision:
        assert all(rev in skippable for rev, _ in rest), (
            f"events missing (start {consumer.start}):\n got  {got}\n want {want}"
        )
        return
    k = consumer.compact_revision
    assert k in model.compactions, f"compact_revision {k} was never compacted to"
    needed = got[-1][0] + 1 if got else consumer.start
    assert k > needed, f"compacted at {k} although it needed {needed} next"
    if strict:
        pending = [rev for rev, _ in rest if rev < k]
        unsynced = consumer.past_start and any(c > consumer.start for c in consumer.compactions_before_first_read)
        assert pending or unsynced, (
            f"a watcher (start {consumer.start}, {'slow' if consumer.slow else 'fast'}, {consumer.spec}) with no "
            f"event below {k} left to read was compacted at {k}; etcd compacts only unsynced watchers"
        )


def run_and_check(scenario: tuple[list[tuple[Step, bool]], int], strict: bool) -> None:
    note(f"scenario: {scenario!r}")
    with mock.patch.object(hub_module, "HISTORY_BATCH_REVISIONS", scenario[1]):
        model, consumers = asyncio.run(run(scenario))
    for consumer in consumers:
        check(model, consumer, strict)


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A watcher on "c" from now; two writes elsewhere; compaction at the current revision; a write to "c".
QUIET_WATCHER: tuple[list[tuple[Step, bool]], int] = (
    [
        (("watch", b"c", b"", "now", 0.0, False, False, False, False), True),
        (("put", b"a", b"x"), True),
        (("put", b"a", b"x"), True),
        (("compact", 1.0), True),
        (("put", b"c", b"x"), True),
    ],
    1000,
)


@SETTINGS
@given(scenarios)
def test_watchers_see_exactly_the_history(scenario: tuple[list[tuple[Step, bool]], int]) -> None:
    run_and_check(scenario, strict=False)


def test_a_quiet_live_watcher_is_not_compacted() -> None:
    """A watcher that is waiting with nothing to read is synced: a compaction past its cursor must not
    cancel it (etcd compacts only unsynced watchers). Watchers whose consumer has not read yet are another
    matter: Corral keeps no buffer for them, so their cursor lags and a compaction past it cancels them
    (with compact_revision) where etcd, which buffers on the server, might still deliver."""
    _quiet_watcher_example()


@settings(SETTINGS, phases=(Phase.explicit,))
@example(QUIET_WATCHER)
@given(scenarios)
def _quiet_watcher_example(scenario: tuple[list[tuple[Step, bool]], int]) -> None:
    run_and_check(scenario, strict=True)
