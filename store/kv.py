"""etcd's KV requests over the MVCC store: range options, put flags, deletes, txns and compaction.

These follow etcd's applier (`etcdserver/apply.go`) rule for rule, quirks included, because clients
depend on them: limits are applied after sorting and filtering, `count` ignores both, nested txn
compares are all evaluated against the state before the txn, and so on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Protocol

from .errors import Compacted, FutureRevision, KeyNotFound, LeaseNotFound
from .mvcc import MVCCStore, WriteTxn
from .types import (
    CompactionRequest,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RequestOp,
    ResponseOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)

LeaseLookup = Callable[[int], bool]


class ReadView(Protocol):
    @property
    def revision(self) -> int: ...

    def range(
        self, key: bytes, range_end: bytes = b"", revision: int = 0, limit: int = 0, count_only: bool = False
    ) -> tuple[list[KeyValue], int, int]: ...


_SORT_KEYS: dict[SortTarget, Callable[[KeyValue], Any]] = {
    SortTarget.KEY: attrgetter("key"),
    SortTarget.VERSION: attrgetter("version"),
    SortTarget.CREATE: attrgetter("create_revision"),
    SortTarget.MOD: attrgetter("mod_revision"),
    SortTarget.VALUE: attrgetter("value"),
}


def range_(view: ReadView, request: RangeRequest) -> RangeResponse:
    filtered = bool(
        request.min_mod_revision
        or request.max_mod_revision
        or request.min_create_revision
        or request.max_create_revision
    )
    limit = request.limit
    if request.sort_order is not SortOrder.NONE or filtered:
        limit = 0  # sort and filter everything, truncate afterwards
    elif limit > 0:
        limit += 1  # one extra tells whether there is `more`
    kvs, count, _ = view.range(request.key, request.range_end, request.revision, limit, request.count_only)
    if filtered:
        kvs = [kv for kv in kvs if _passes_filters(request, kv)]
    order = request.sort_order
    if request.sort_target is not SortTarget.KEY and order is SortOrder.NONE:
        order = SortOrder.ASCEND
    if order is not SortOrder.NONE and not (request.sort_target is SortTarget.KEY and order is SortOrder.ASCEND):
        kvs.sort(key=_SORT_KEYS[request.sort_target], reverse=order is SortOrder.DESCEND)
    more = False
    if 0 < request.limit < len(kvs):
        del kvs[request.limit :]
        more = True
    if request.keys_only:
        kvs = [KeyValue(kv.key, kv.create_revision, kv.mod_revision, kv.version, b"", kv.lease) for kv in kvs]
    return RangeResponse(view.revision, kvs, more, count)


def _passes_filters(request: RangeRequest, kv: KeyValue) -> bool:
    if request.max_mod_revision and kv.mod_revision > request.max_mod_revision:
        return False
    if request.min_mod_revision and kv.mod_revision < request.min_mod_revision:
        return False
    if request.max_create_revision and kv.create_revision > request.max_create_revision:
        return False
    if request.min_create_revision and kv.create_revision < request.min_create_revision:
        return False
    return True


def put(store: MVCCStore, request: PutRequest, lease_exists: LeaseLookup) -> PutResponse:
    if request.lease and not lease_exists(request.lease):
        raise LeaseNotFound()
    if (request.ignore_value or request.ignore_lease) and store.get(request.key) is None:
        raise KeyNotFound()
    txn = store.write()
    response = _put(txn, request)
    txn.commit()
    return response


def _put(txn: WriteTxn, request: PutRequest) -> PutResponse:
    value, lease = request.value, request.lease
    prev = txn.get(request.key) if (request.ignore_value or request.ignore_lease or request.prev_kv) else None
    if prev is not None:
        if request.ignore_value:
            value = prev.value
        if request.ignore_lease:
            lease = prev.lease
    event = txn.put(request.key, value, lease)
    return PutResponse(event.kv.mod_revision, prev if request.prev_kv else None)


def delete_range(store: MVCCStore, request: DeleteRangeRequest) -> DeleteRangeResponse:
    txn = store.write()
    response = _delete_range(txn, request)
    txn.commit()
    return response


def _delete_range(txn: WriteTxn, request: DeleteRangeRequest) -> DeleteRangeResponse:
    events = txn.delete_range(request.key, request.range_end)
    prev_kvs = [event.prev_kv for event in events if event.prev_kv is not None] if request.prev_kv else []
    return DeleteRangeResponse(txn.revision, len(events), prev_kvs)


def compact(store: MVCCStore, request: CompactionRequest) -> CompactionResponse:
    store.compact(request.revision)
    return CompactionResponse(store.revision)


# -- transactions -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Decision:
    """Which branch a txn takes, and the decisions of the txns nested in that branch, in order."""

    succeeded: bool
    nested: list[_Decision] = field(default_factory=list)


def is_read_only(request: TxnRequest) -> bool:
    return all(isinstance(op, RangeRequest) for op in (*request.success, *request.failure))


def txn(store: MVCCStore, request: TxnRequest, lease_exists: LeaseLookup) -> TxnResponse:
    """Run a txn atomically: decide every branch, check the chosen ops, then apply them."""
    decision = _decide(store, request)
    if not is_read_only(request):
        _check_ops(store, request, decision, lambda op: _check_put(store, op, lease_exists))
    _check_ops(store, request, decision, lambda op: _check_range(store, op))
    write = store.write()
    response = _apply_txn(write, request, decision)
    response.revision = write.commit()
    return response


def _decide(store: MVCCStore, request: TxnRequest) -> _Decision:
    succeeded = all(_compare(store, compare) for compare in request.compare)
    branch = request.success if succeeded else request.failure
    return _Decision(succeeded, [_decide(store, op) for op in branch if isinstance(op, TxnRequest)])


def _compare(store: MVCCStore, compare: Compare) -> bool:
    kvs, _, _ = store.range(compare.key, compare.range_end)
    if not kvs:
        if compare.target is CompareTarget.VALUE:
            return False  # a missing key has no value to compare, equal or not
        return _holds(compare, KeyValue(compare.key, 0, 0, 0))
    return all(_holds(compare, kv) for kv in kvs)


def _holds(compare: Compare, kv: KeyValue) -> bool:
    target = compare.target
    actual: int | bytes
    if target is CompareTarget.VALUE:
        actual = kv.value
    elif target is CompareTarget.VERSION:
        actual = kv.version
    elif target is CompareTarget.CREATE:
        actual = kv.create_revision
    elif target is CompareTarget.MOD:
        actual = kv.mod_revision
    else:
        actual = kv.lease
    operand = compare.operand
    result = compare.result
    if result is CompareResult.EQUAL:
        return actual == operand
    if result is CompareResult.NOT_EQUAL:
        return actual != operand
    if result is CompareResult.GREATER:
        return actual > operand  # type: ignore[operator]
    return actual < operand  # type: ignore[operator]


def _check_ops(
    store: MVCCStore, request: TxnRequest, decision: _Decision, check: Callable[[RequestOp], None]
) -> None:
    nested = iter(decision.nested)
    for op in request.success if decision.succeeded else request.failure:
        if isinstance(op, TxnRequest):
            _check_ops(store, op, next(nested), check)
        else:
            check(op)


def _check_put(store: MVCCStore, op: RequestOp, lease_exists: LeaseLookup) -> None:
    if not isinstance(op, PutRequest):
        return
    if (op.ignore_value or op.ignore_lease) and store.get(op.key) is None:
        raise KeyNotFound()
    if op.lease and not lease_exists(op.lease):
        raise LeaseNotFound()


def _check_range(store: MVCCStore, op: RequestOp) -> None:
    if not isinstance(op, RangeRequest) or op.revision == 0:
        return
    if op.revision > store.revision:
        raise FutureRevision()
    # etcd checks against the compaction point here, so a negative revision is "compacted" once
    # anything has been compacted, while a standalone range reads it as "latest".
    if op.revision < store.compact_revision:
        raise Compacted()


def _apply_txn(write: WriteTxn, request: TxnRequest, decision: _Decision) -> TxnResponse:
    nested = iter(decision.nested)
    responses: list[ResponseOp] = []
    for op in request.success if decision.succeeded else request.failure:
        if isinstance(op, RangeRequest):
            responses.append(range_(write, op))
        elif isinstance(op, PutRequest):
            responses.append(_put(write, op))
        elif isinstance(op, DeleteRangeRequest):
            responses.append(_delete_range(write, op))
        elif isinstance(op, TxnRequest):
            responses.append(_apply_txn(write, op, next(nested)))
    return TxnResponse(0, decision.succeeded, responses)


def prefix_end(prefix: bytes) -> bytes:
    """The range end that makes [prefix, end) every key starting with `prefix` (etcd's GetPrefixRangeEnd):
    the last byte below 0xff incremented, or "\\0" (no upper bound) if there is none."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1]) if stripped else b"\x00"
