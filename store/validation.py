"""Checks that need no state, run before a request is proposed (etcd's `v3rpc/key.go` checks)."""

from __future__ import annotations

from .errors import DuplicateKey, KeyNotFound, KeyNotProvided, LeaseProvided, TooManyOps, ValueProvided
from .types import DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest

DEFAULT_MAX_TXN_OPS = 128


def check_range(request: RangeRequest) -> None:
    if not request.key:
        raise KeyNotProvided()


def check_put(request: PutRequest) -> None:
    if not request.key:
        raise KeyNotProvided()
    if request.ignore_value and request.value:
        raise ValueProvided()
    if request.ignore_lease and request.lease:
        raise LeaseProvided()


def check_delete_range(request: DeleteRangeRequest) -> None:
    if not request.key:
        raise KeyNotProvided()


def check_txn(request: TxnRequest, max_ops: int = DEFAULT_MAX_TXN_OPS) -> None:
    """Size, keys and op shapes (recursively), then puts that collide within a branch."""
    _check_txn_shape(request, max_ops)
    _check_writes(request.success)
    _check_writes(request.failure)


def _check_txn_shape(request: TxnRequest, max_ops: int) -> None:
    ops = max(len(request.compare), len(request.success), len(request.failure))
    if ops > max_ops:
        raise TooManyOps()
    for compare in request.compare:
        if not compare.key:
            raise KeyNotProvided()
    for op in (*request.success, *request.failure):
        _check_op(op, max_ops - ops)


def _check_op(op: RequestOp, max_ops: int) -> None:
    if isinstance(op, RangeRequest):
        check_range(op)
    elif isinstance(op, PutRequest):
        check_put(op)
    elif isinstance(op, DeleteRangeRequest):
        check_delete_range(op)
    elif isinstance(op, TxnRequest):
        _check_txn_shape(op, max_ops)
    else:
        raise KeyNotFound()


class _Deletes:
    """Deleted intervals of one branch; a put inside any of them collides."""

    __slots__ = ("intervals",)

    def __init__(self) -> None:
        self.intervals: list[tuple[bytes, bytes]] = []

    def add(self, request: DeleteRangeRequest) -> None:
        if request.range_end:
            # etcd compares interval bounds as plain strings, so a "\0" (from-key) end gives an empty
            # interval that covers nothing; we match that.
            self.intervals.append((request.key, request.range_end))
        else:
            self.intervals.append((request.key, request.key + b"\x00"))

    def extend(self, other: _Deletes) -> None:
        self.intervals.extend(other.intervals)

    def covers(self, key: bytes) -> bool:
        return any(start <= key < end for start, end in self.intervals)


def _check_writes(ops: tuple[RequestOp, ...]) -> tuple[set[bytes], _Deletes]:
    """Puts and deletes of one branch (with nested txns); raises DuplicateKey on a collision."""
    deletes = _Deletes()
    for op in ops:
        if isinstance(op, DeleteRangeRequest):
            deletes.add(op)
    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, TxnRequest):
            continue
        puts_then, deletes_then = _check_writes(op.success)
        puts_else, deletes_else = _check_writes(op.failure)
        for key in puts_then:
            if key in puts or deletes.covers(key):
                raise DuplicateKey()
            puts.add(key)
        for key in puts_else:
            # The two branches of one nested txn never both run, so they may write the same key.
            if (key in puts and key not in puts_then) or deletes.covers(key):
                raise DuplicateKey()
            puts.add(key)
        deletes.extend(deletes_then)
        deletes.extend(deletes_else)
    for op in ops:
        if isinstance(op, PutRequest):
            if op.key in puts or deletes.covers(op.key):
                raise DuplicateKey()
            puts.add(op.key)
    return puts, deletes

