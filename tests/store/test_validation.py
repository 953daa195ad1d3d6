"""Stateless request checks: etcd's limits and its duplicate-key rules for txns."""

import pytest
from corral.store.errors import (
    DuplicateKey,
    KeyNotFound,
    KeyNotProvided,
    LeaseProvided,
    TooManyOps,
    ValueProvided,
)
from corral.store.types import Compare, DeleteRangeRequest, EmptyOp, PutRequest, RangeRequest, TxnRequest
from corral.store.validation import check_put, check_txn


def test_put_checks() -> None:
    with pytest.raises(KeyNotProvided):
        check_put(PutRequest(b""))
    with pytest.raises(ValueProvided):
        check_put(PutRequest(b"k", b"v", ignore_value=True))
    with pytest.raises(LeaseProvided):
        check_put(PutRequest(b"k", lease=1, ignore_lease=True))


def test_too_many_ops_counts_the_largest_list() -> None:
    check_txn(TxnRequest(success=tuple(PutRequest(b"k%d" % i) for i in range(4))), max_ops=4)
    with pytest.raises(TooManyOps):
        check_txn(TxnRequest(failure=tuple(RangeRequest(b"k") for _ in range(5))), max_ops=4)
    nested = TxnRequest(success=(RangeRequest(b"a"), RangeRequest(b"b"), RangeRequest(b"c")))
    with pytest.raises(TooManyOps):  # nested txns count against what is left
        check_txn(TxnRequest(success=(nested, RangeRequest(b"x"))), max_ops=4)


def test_empty_keys_and_empty_ops() -> None:
    with pytest.raises(KeyNotProvided):
        check_txn(TxnRequest(compare=(Compare(b""),)))
    with pytest.raises(KeyNotFound):
        check_txn(TxnRequest(success=(EmptyOp(),)))


@pytest.mark.parametrize(
    "ops",
    [
        (PutRequest(b"a"), PutRequest(b"a")),
        (PutRequest(b"a"), DeleteRangeRequest(b"a")),
        (DeleteRangeRequest(b"a", b"c"), PutRequest(b"b")),
        (PutRequest(b"b"), TxnRequest(success=(PutRequest(b"b"),))),
        (DeleteRangeRequest(b"a", b"c"), TxnRequest(failure=(PutRequest(b"b"),))),
        (TxnRequest(success=(DeleteRangeRequest(b"b"),)), PutRequest(b"b")),
    ],
)
def test_duplicate_writes_in_one_branch(ops: tuple[object, ...]) -> None:
    with pytest.raises(DuplicateKey):
        check_txn(TxnRequest(success=ops))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ops",
    [
        (DeleteRangeRequest(b"a"), DeleteRangeRequest(b"a")),  # deletes may overlap
        (TxnRequest(success=(PutRequest(b"b"),), failure=(PutRequest(b"b"),)),),  # branches exclude each other
        (DeleteRangeRequest(b"a", b"\x00"), PutRequest(b"b")),  # etcd: a "\0" end covers nothing here
    ],
)
def test_allowed_overlaps(ops: tuple[object, ...]) -> None:
    check_txn(TxnRequest(success=ops))  # type: ignore[arg-type]
    check_txn(TxnRequest(success=(PutRequest(b"a"),), failure=(PutRequest(b"a"),)))
