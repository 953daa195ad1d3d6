"""Request-level semantics that etcd's applier defines: range options, put flags, txns."""

import pytest
from corral.store import kv
from corral.store.errors import Compacted, FutureRevision, KeyNotFound, LeaseNotFound
from corral.store.state_machine import KVStateMachine
from corral.store.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    KeyValue,
    PutRequest,
    RangeRequest,
    RangeResponse,
    SortOrder,
    SortTarget,
    TxnRequest,
)


@pytest.fixture
def machine() -> KVStateMachine:
    machine = KVStateMachine()
    for key, value in [(b"key/a", b"3"), (b"key/b", b"1"), (b"key/c", b"2"), (b"key/d", b"5"), (b"key/e", b"4")]:
        machine.apply_command(PutRequest(key, value))
    machine.apply_command(PutRequest(b"key/b", b"1b"))  # rev 7: key/b version 2
    return machine


def rng(machine: KVStateMachine, **options: object) -> RangeResponse:
    return kv.range_(machine.store, RangeRequest(b"key/", b"key0", **options))  # type: ignore[arg-type]


def keys(response: RangeResponse) -> list[bytes]:
    return [kv.key[-1:] for kv in response.kvs]


def test_limit_sets_more_and_count_ignores_limit(machine: KVStateMachine) -> None:
    response = rng(machine, limit=2)
    assert keys(response) == [b"a", b"b"] and response.more and response.count == 5
    assert not rng(machine, limit=5).more
    assert keys(rng(machine, limit=-1)) == [b"a", b"b", b"c", b"d", b"e"]


def test_count_only_returns_no_kvs_and_never_more(machine: KVStateMachine) -> None:
    response = rng(machine, count_only=True, limit=2)
    assert response.kvs == [] and response.count == 5 and not response.more


def test_sort_descending_by_key_with_limit(machine: KVStateMachine) -> None:
    response = rng(machine, sort_order=SortOrder.DESCEND, limit=2)
    assert keys(response) == [b"e", b"d"] and response.more


def test_sort_target_without_order_sorts_ascending_within_limit_plus_one(machine: KVStateMachine) -> None:
    # etcd quirk: with order NONE the store stops at limit+1 keys by key order, then sorts those.
    response = rng(machine, sort_target=SortTarget.VALUE, limit=2)
    assert keys(response) == [b"b", b"c"]  # values among a,b,c: "3","1b","2" -> b, c
    full = rng(machine, sort_target=SortTarget.VALUE, sort_order=SortOrder.ASCEND, limit=2)
    assert keys(full) == [b"b", b"c"]


def test_filters_apply_before_limit_and_count_ignores_them(machine: KVStateMachine) -> None:
    response = rng(machine, min_mod_revision=4, limit=1)
    assert keys(response) == [b"b"] and response.more and response.count == 5
    assert keys(rng(machine, max_create_revision=3)) == [b"a", b"b"]
    assert keys(rng(machine, min_create_revision=5, max_mod_revision=5)) == [b"d"]


def test_keys_only_drops_values(machine: KVStateMachine) -> None:
    assert all(kv.value == b"" for kv in rng(machine, keys_only=True).kvs)


def test_historical_read_reports_current_revision(machine: KVStateMachine) -> None:
    response = rng(machine, revision=4)
    assert keys(response) == [b"a", b"b", b"c"] and response.count == 3 and response.revision == 7


def test_put_flags(machine: KVStateMachine) -> None:
    response = machine.apply_command(PutRequest(b"key/a", ignore_value=True, prev_kv=True))
    assert response.prev_kv.value == b"3"  # type: ignore[union-attr]
    assert machine.store.get(b"key/a") == KeyValue(b"key/a", 2, 8, 2, b"3")
    assert machine.apply_command(PutRequest(b"missing", ignore_value=True)) == KeyNotFound()
    assert machine.apply_command(PutRequest(b"missing", b"v", lease=5)) == LeaseNotFound()
    assert machine.store.revision == 8


def test_txn_revision_moves_after_first_write() -> None:
    machine = KVStateMachine()
    machine.apply_command(PutRequest(b"foo", b"bar"))
    response = machine.apply_command(
        TxnRequest(
            success=(
                RangeRequest(b"foo", count_only=True),
                DeleteRangeRequest(b"nothing"),
                PutRequest(b"tx", b"1"),
                RangeRequest(b"foo", count_only=True),
                DeleteRangeRequest(b"nothing"),
            )
        )
    )
    assert response.succeeded and response.revision == 3  # type: ignore[union-attr]
    assert [op.revision for op in response.responses] == [2, 2, 3, 3, 3]  # type: ignore[union-attr]


def test_compares_on_missing_keys() -> None:
    machine = KVStateMachine()
    def holds(compare: Compare) -> bool:
        return machine.apply_command(TxnRequest(compare=(compare,))).succeeded  # type: ignore[union-attr]

    assert holds(Compare(b"nope", CompareTarget.VERSION, CompareResult.EQUAL, 0))
    assert holds(Compare(b"nope", CompareTarget.CREATE, CompareResult.EQUAL, 0))
    assert not holds(Compare(b"nope", CompareTarget.MOD, CompareResult.GREATER, 0))
    assert not holds(Compare(b"nope", CompareTarget.VALUE, CompareResult.EQUAL, b""))
    assert not holds(Compare(b"nope", CompareTarget.VALUE, CompareResult.NOT_EQUAL, b"x"))


def test_range_compare_must_hold_for_every_key(machine: KVStateMachine) -> None:
    def holds(compare: Compare) -> bool:
        return machine.apply_command(TxnRequest(compare=(compare,))).succeeded  # type: ignore[union-attr]

    assert holds(Compare(b"key/", CompareTarget.MOD, CompareResult.LESS, 8, b"key0"))
    assert not holds(Compare(b"key/", CompareTarget.MOD, CompareResult.LESS, 7, b"key0"))
    assert holds(Compare(b"key/", CompareTarget.VERSION, CompareResult.GREATER, 0, b"\x00"))


def test_nested_txn_compares_see_the_state_before_the_txn() -> None:
    machine = KVStateMachine()
    inner = TxnRequest(compare=(Compare(b"k", CompareTarget.VERSION, CompareResult.EQUAL, 0),),
                       success=(PutRequest(b"inner", b"then"),), failure=(PutRequest(b"inner", b"else"),))  # fmt: skip
    response = machine.apply_command(TxnRequest(success=(PutRequest(b"k", b"v"), inner)))
    assert machine.store.get(b"inner").value == b"then"  # type: ignore[union-attr]
    assert response.responses[1].succeeded  # type: ignore[union-attr]


def test_failed_txn_check_applies_nothing() -> None:
    machine = KVStateMachine()
    response = machine.apply_command(TxnRequest(success=(PutRequest(b"a", b"1"), PutRequest(b"b", b"2", lease=9))))
    assert response == LeaseNotFound()
    assert machine.store.revision == 1 and machine.store.get(b"a") is None


def test_txn_range_revision_checks() -> None:
    machine = KVStateMachine()
    machine.apply_command(PutRequest(b"a", b"1"))
    assert machine.apply_command(TxnRequest(success=(RangeRequest(b"a", revision=3),))) == FutureRevision()
    assert machine.apply_command(TxnRequest(success=(RangeRequest(b"a", revision=-1),))).succeeded  # type: ignore[union-attr]
    machine.store.compact(2)
    # inside a txn a negative revision counts as below the compaction point
    assert machine.apply_command(TxnRequest(success=(RangeRequest(b"a", revision=-1),))) == Compacted()
