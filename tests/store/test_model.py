"""Property test: random op sequences against a naive reference model of etcd's KV semantics.

The model keeps a full copy of the key space for every revision and answers each request by brute
force, so it is easy to check by eye; the store must give the same answers.
"""

from __future__ import annotations

import os

from corral.store import kv
from corral.store.errors import Compacted, EtcdError, FutureRevision
from corral.store.state_machine import KVStateMachine
from corral.store.types import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    SortOrder,
    SortTarget,
    TxnRequest,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

KEYS = st.sampled_from([b"a", b"a/1", b"a/2", b"b", b"b/1", b"c", b"\xff"])
ENDS = st.sampled_from([b"", b"", b"\x00", b"a0", b"b", b"c", b"z", b"a"])
VALUES = st.binary(max_size=3)

State = dict[bytes, KeyValue]


class Model:
    def __init__(self) -> None:
        self.states: dict[int, State] = {1: {}}
        self.revision = 1
        self.compacted = -1

    def selected(self, state: State, key: bytes, end: bytes) -> list[KeyValue]:
        if not end:
            return [state[key]] if key in state else []
        return [state[k] for k in sorted(state) if k >= key and (end == b"\x00" or k < end)]

    def write(self, changes: list[tuple[bytes, bytes | None]]) -> None:
        """Apply puts (value) and deletes (None) as one revision."""
        if not changes:
            return
        state = dict(self.states[self.revision])
        rev = self.revision + 1
        for key, value in changes:
            if value is None:
                del state[key]
            else:
                prev = state.get(key)
                create, version = (prev.create_revision, prev.version + 1) if prev else (rev, 1)
                state[key] = KeyValue(key, create, rev, version, value)
        self.revision = rev
        self.states[rev] = state

    def range(self, request: RangeRequest) -> tuple[list[KeyValue], int, bool]:
        if request.revision > self.revision:
            raise FutureRevision()
        at = request.revision if request.revision > 0 else self.revision
        if at < self.compacted:
            raise Compacted()
        kvs = self.selected(self.states[at], request.key, request.range_end)
        count = len(kvs)
        target = request.sort_target
        order = request.sort_order
        if order is SortOrder.NONE and target is not SortTarget.KEY:
            order = SortOrder.ASCEND
        attr = {SortTarget.KEY: "key", SortTarget.VERSION: "version", SortTarget.CREATE: "create_revision",
                SortTarget.MOD: "mod_revision", SortTarget.VALUE: "value"}[target]  # fmt: skip
        if request.sort_order is SortOrder.NONE and request.limit > 0:
            kvs = kvs[: request.limit + 1]  # etcd fetches limit+1 before sorting when order is NONE
        if order is not SortOrder.NONE:
            kvs = sorted(kvs, key=lambda kv: getattr(kv, attr), reverse=order is SortOrder.DESCEND)
        more = 0 < request.limit < len(kvs)
        if more:
            kvs = kvs[: request.limit]
        return kvs, count, more

    def holds(self, compare: Compare) -> bool:
        kvs = self.selected(self.states[self.revision], compare.key, compare.range_end)
        if not kvs:
            if compare.target is CompareTarget.VALUE:
                return False
            kvs = [KeyValue(compare.key, 0, 0, 0)]
        for found in kvs:
            actual = {CompareTarget.VERSION: found.version, CompareTarget.CREATE: found.create_revision,
                      CompareTarget.MOD: found.mod_revision, CompareTarget.VALUE: found.value,
                      CompareTarget.LEASE: found.lease}[compare.target]  # fmt: skip
            operand = compare.operand
            ok = {CompareResult.EQUAL: actual == operand, CompareResult.NOT_EQUAL: actual != operand,  # fmt: skip
                  CompareResult.GREATER: actual > operand,  # type: ignore[operator]
                  CompareResult.LESS: actual < operand}[compare.result]  # type: ignore[operator]
            if not ok:
                return False
        return True


def compares() -> st.SearchStrategy[Compare]:
    def build(key: bytes, target: CompareTarget, result: CompareResult, number: int, value: bytes,
              end: bytes) -> Compare:  # fmt: skip
        operand: int | bytes = value if target is CompareTarget.VALUE else number
        return Compare(key, target, result, operand, end)

    return st.builds(build, KEYS, st.sampled_from(CompareTarget), st.sampled_from(CompareResult),
                     st.integers(0, 12), VALUES, st.sampled_from([b"", b"", b"\x00", b"b"]))  # fmt: skip


class StoreVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.machine = KVStateMachine()
        self.model = Model()
        self.index = 0

    def apply(self, command: object) -> object:
        self.index += 1
        return self.machine.apply_command(command)  # type: ignore[arg-type]

    @rule(key=KEYS, value=VALUES, prev_kv=st.booleans())
    def put(self, key: bytes, value: bytes, prev_kv: bool) -> None:
        prev = self.model.states[self.model.revision].get(key)
        response = self.apply(PutRequest(key, value, prev_kv=prev_kv))
        self.model.write([(key, value)])
        assert response == PutResponse(self.model.revision, prev if prev_kv else None)

    @rule(key=KEYS, end=ENDS)
    def delete(self, key: bytes, end: bytes) -> None:
        doomed = self.model.selected(self.model.states[self.model.revision], key, end)
        response = self.apply(DeleteRangeRequest(key, end, prev_kv=True))
        self.model.write([(kv.key, None) for kv in doomed])
        assert response == DeleteRangeResponse(self.model.revision, len(doomed), doomed)

    @rule(
        key=KEYS, end=ENDS, back=st.integers(-1, 6), limit=st.integers(-1, 4),
        order=st.sampled_from(SortOrder), sort_target=st.sampled_from(SortTarget), keys_only=st.booleans(),
    )  # fmt: skip
    def range(self, key: bytes, end: bytes, back: int, limit: int, order: SortOrder,
              sort_target: SortTarget, keys_only: bool) -> None:  # fmt: skip
        target = sort_target
        revision = 0 if back < 0 else self.model.revision + 1 - back
        request = RangeRequest(key, end, limit, revision, order, target, keys_only=keys_only)
        try:
            expected: object = self.model.range(request)
        except EtcdError as error:
            expected = error
        try:
            response = kv.range_(self.machine.store, request)
            actual: object = (response.kvs, response.count, response.more)
            assert response.revision == self.model.revision
        except EtcdError as error:
            actual = error
        if keys_only and isinstance(expected, tuple):
            kvs, count, more = expected
            expected = ([KeyValue(k.key, k.create_revision, k.mod_revision, k.version) for k in kvs], count, more)
        if target is not SortTarget.KEY and isinstance(expected, tuple) and isinstance(actual, tuple):
            # ties may come in any order: compare as multisets, then the sort keys in order
            assert sorted(map(repr, expected[0])) == sorted(map(repr, actual[0])) and expected[1:] == actual[1:]
        else:
            assert actual == expected

    @rule(
        guards=st.lists(compares(), max_size=2),
        then=st.lists(st.tuples(KEYS, VALUES), max_size=3, unique_by=lambda kv: kv[0]),
        otherwise=st.lists(KEYS, max_size=2),
    )
    def txn(self, guards: list[Compare], then: list[tuple[bytes, bytes]], otherwise: list[bytes]) -> None:
        succeeded = all(self.model.holds(c) for c in guards)
        request = TxnRequest(
            tuple(guards),
            tuple(PutRequest(k, v) for k, v in then),
            tuple(DeleteRangeRequest(k) for k in otherwise),
        )
        response = self.apply(request)
        if succeeded:
            self.model.write(list(then))
        else:
            current = self.model.states[self.model.revision]
            self.model.write([(k, None) for k in dict.fromkeys(otherwise) if k in current])
        assert response.succeeded == succeeded  # type: ignore[attr-defined]
        assert response.revision == self.model.revision  # type: ignore[attr-defined]

    @rule(back=st.integers(0, 8))
    def compact(self, back: int) -> None:
        revision = self.model.revision - back
        response = self.apply(CompactionRequest(revision))
        if revision <= self.model.compacted:
            assert response == Compacted()
        else:
            self.model.compacted = revision
            assert not isinstance(response, EtcdError)

    @rule()
    def snapshot_round_trip(self) -> None:
        snapshot = self.machine.snapshot()
        copy = KVStateMachine()
        copy.restore(snapshot.serialize())
        snapshot.release()
        self.machine = copy

    @invariant()
    def every_retained_revision_reads_the_same(self) -> None:
        store = self.machine.store
        assert store.revision == self.model.revision
        for revision in range(max(self.model.compacted, 1), self.model.revision + 1):
            assert store.range(b"\x00", b"\x00", revision)[0] == list(
                self.model.selected(self.model.states[revision], b"\x00", b"\x00")
            )


StoreVersusModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("CORRAL_MODEL_EXAMPLES", "150")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_store_matches_model = StoreVersusModel.TestCase


def test_successive_snapshots_share_their_history_chunks() -> None:
    from corral.store.commands import encode
    from corral.store.state_machine import HISTORY_BLOCK
    from corral.store.types import PutRequest

    machine = KVStateMachine()
    for i in range(2 * HISTORY_BLOCK + 10):
        command = PutRequest(b"k%d" % (i % 100), b"v")
        machine.apply(i + 1, encode(command), command)
    first = machine.snapshot()
    names_first = [name for name, _ in first.chunks()]
    first.release()
    for i in range(HISTORY_BLOCK):
        command = PutRequest(b"k%d" % (i % 100), b"w")
        machine.apply(machine.applied_index + 1, encode(command), command)
    second = machine.snapshot()
    names_second = [name for name, _ in second.chunks()]
    assert names_first[2:4] == names_second[2:4]  # the two complete blocks are the same chunks
    assert len(set(names_second) - set(names_first)) == 3  # head, the finished block, the new partial one
    copy = KVStateMachine()
    copy.restore(second.serialize())
    second.release()
    assert copy.store.range(b"k", b"l") == machine.store.range(b"k", b"l")
    assert copy.applied_index == machine.applied_index
