"""Message sizes as etcd measures them: the protobuf encoding, not the JSON body.

etcd refuses a gRPC message larger than max-request-bytes + 512 KiB before decoding it, and a write whose
raft request (the message plus a small header) is larger than max-request-bytes. Corral receives JSON,
so it computes the size the same request would have in protobuf and applies etcd's two limits to that.

A watch created with `fragment` has its event messages split once they reach max-request-bytes + 512 KiB
in protobuf (`fragment_ends`), so the same sizes are computed for watch responses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from corral.store.types import (
    CompactionRequest,
    Compare,
    CompareTarget,
    DeleteRangeRequest,
    EmptyOp,
    Event,
    KeyValue,
    PutRequest,
    RangeRequest,
    TxnRequest,
)

# An InternalRaftRequest adds a RequestHeader{ID} and the field tag and length of the request itself.
RAFT_REQUEST_OVERHEAD = 16


def _varint(value: int) -> int:
    value &= (1 << 64) - 1  # negative int64 values take ten bytes, as uint64
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def _bytes(data: bytes) -> int:
    return 1 + _varint(len(data)) + len(data) if data else 0


def _int(value: int) -> int:
    return 1 + _varint(value) if value else 0


def _bool(value: bool) -> int:
    return 2 if value else 0


def _message(size: int) -> int:
    return 1 + _varint(size) + size


def proto_size(request: object) -> int:
    """The protobuf-encoded size of a request (field tags below 16 take one byte)."""
    if isinstance(request, PutRequest):
        return (
            _bytes(request.key) + _bytes(request.value) + _int(request.lease) + _bool(request.prev_kv)
            + _bool(request.ignore_value) + _bool(request.ignore_lease)
        )  # fmt: skip
    if isinstance(request, RangeRequest):
        return (
            _bytes(request.key) + _bytes(request.range_end) + _int(request.limit) + _int(request.revision)
            + _int(request.sort_order) + _int(request.sort_target) + _bool(request.serializable)
            + _bool(request.keys_only) + _bool(request.count_only) + _int(request.min_mod_revision)
            + _int(request.max_mod_revision) + _int(request.min_create_revision)
            + _int(request.max_create_revision)
        )  # fmt: skip
    if isinstance(request, DeleteRangeRequest):
        return _bytes(request.key) + _bytes(request.range_end) + _bool(request.prev_kv)
    if isinstance(request, TxnRequest):
        return (
            sum(_message(_compare_size(c)) for c in request.compare)
            + sum(_message(_op_size(op)) for op in (*request.success, *request.failure))
        )  # fmt: skip
    if isinstance(request, CompactionRequest):
        return _int(request.revision) + _bool(request.physical)
    raise TypeError(f"no size for {request!r}")


def _op_size(op: object) -> int:
    return 0 if isinstance(op, EmptyOp) else _message(proto_size(op))


def _compare_size(compare: Compare) -> int:
    operand = compare.operand
    size = _int(compare.result) + _int(compare.target) + _bytes(compare.key) + _bytes(compare.range_end)
    if compare.target is CompareTarget.VALUE:
        return size + (1 + _varint(len(operand)) + len(operand) if isinstance(operand, bytes) else 0)
    # a oneof member is encoded even when zero
    return size + 1 + _varint(operand if isinstance(operand, int) else 0)


# -- watch responses ---------------------------------------------------------------------------------

_HEADER_FIELDS = ("cluster_id", "member_id", "revision", "raft_term")


def kv_size(kv: KeyValue) -> int:
    return (
        _bytes(kv.key) + _int(kv.create_revision) + _int(kv.mod_revision) + _int(kv.version) + _bytes(kv.value)
        + _int(kv.lease)
    )  # fmt: skip


def event_size(event: Event) -> int:
    """What one event adds to a WatchResponse: its field tag and length, and the Event itself."""
    size = _int(event.type) + _message(kv_size(event.kv))
    if event.prev_kv is not None:
        size += _message(kv_size(event.prev_kv))
    return _message(size)


def watch_response_size(header: Mapping[str, str], watch_id: int) -> int:
    """A WatchResponse of events, less its events: the header (as the JSON gateway writes it, numbers as
    strings) and the watch id."""
    return _message(sum(_int(int(header[name])) for name in _HEADER_FIELDS if name in header)) + _int(watch_id)


def fragment_ends(base: int, sizes: Sequence[int], limit: int) -> list[int]:
    """Where etcd ends each fragment of a watch response of size `base` plus `sizes` (`event_size` of each
    event) for a `fragment` watch; one entry is the whole response. A response below `limit`, or with fewer
    than two events, goes whole. Otherwise each fragment, sized with its fragment flag set, takes the next
    event, then more while it stays below `limit`: every fragment holds at least one event, however big."""
    if len(sizes) < 2 or base + sum(sizes) < limit:
        return [len(sizes)]
    base += _bool(True)
    ends: list[int] = []
    i = 0
    while i < len(sizes):
        size = base + sizes[i]
        i += 1
        while i < len(sizes) and size + sizes[i] < limit:
            size += sizes[i]
            i += 1
        ends.append(i)
    return ends
