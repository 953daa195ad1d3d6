"""Commands: the mutating requests as they are stored in the log, and their codec.

A command is one byte of codec version followed by an orjson array. Bytes travel as latin-1
strings (each byte one code point), which orjson writes and reads at C speed and which round-trips
every byte value exactly. The format is versioned so that a later release can still replay an older
log: decode() dispatches on the version byte.
"""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import orjson

from .types import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    EmptyOp,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutRequest,
    RangeRequest,
    RequestOp,
    SortOrder,
    SortTarget,
    TxnRequest,
)

Command: TypeAlias = (
    "PutRequest | DeleteRangeRequest | TxnRequest | CompactionRequest | LeaseGrantRequest | LeaseRevokeRequest"
)

CODEC_VERSION = 1

_RANGE, _PUT, _DELETE, _TXN, _COMPACT, _EMPTY, _LEASE_GRANT, _LEASE_REVOKE = range(8)


class CommandDecodeError(ValueError):
    """A log entry that is not a command this version understands."""


def encode(command: Command) -> bytes:
    wire = _to_wire(command)
    try:
        payload = orjson.dumps(wire)
    except orjson.JSONEncodeError:
        # orjson stops at 255 levels; txns nested as deep as etcd allows need more.
        payload = json.dumps(wire, separators=(",", ":"), ensure_ascii=False).encode()
    return bytes((CODEC_VERSION,)) + payload


def decode(data: bytes) -> Command:
    if not data or data[0] != CODEC_VERSION:
        raise CommandDecodeError(f"unknown command codec version {data[:1]!r}")
    try:
        command = _from_wire(orjson.loads(data[1:]))
    except (orjson.JSONDecodeError, IndexError, TypeError, ValueError) as exc:
        raise CommandDecodeError(str(exc)) from exc
    if isinstance(command, (RangeRequest, EmptyOp)):
        raise CommandDecodeError(f"{type(command).__name__} is not a command")
    return command


def _s(data: bytes) -> str:
    return data.decode("latin-1")


def _b(text: str) -> bytes:
    return text.encode("latin-1")


def _to_wire(op: RequestOp | Command) -> list[Any]:
    if isinstance(op, PutRequest):
        flags = op.prev_kv | op.ignore_value << 1 | op.ignore_lease << 2
        return [_PUT, _s(op.key), _s(op.value), op.lease, flags]
    if isinstance(op, RangeRequest):
        flags = op.serializable | op.keys_only << 1 | op.count_only << 2
        return [
            _RANGE, _s(op.key), _s(op.range_end), op.limit, op.revision, int(op.sort_order),
            int(op.sort_target), flags, op.min_mod_revision, op.max_mod_revision,
            op.min_create_revision, op.max_create_revision,
        ]  # fmt: skip
    if isinstance(op, DeleteRangeRequest):
        return [_DELETE, _s(op.key), _s(op.range_end), op.prev_kv]
    if isinstance(op, TxnRequest):
        return [
            _TXN,
            [_compare_to_wire(c) for c in op.compare],
            [_to_wire(o) for o in op.success],
            [_to_wire(o) for o in op.failure],
        ]
    if isinstance(op, CompactionRequest):
        return [_COMPACT, op.revision, op.physical]
    if isinstance(op, LeaseGrantRequest):
        return [_LEASE_GRANT, op.id, op.ttl]
    if isinstance(op, LeaseRevokeRequest):
        return [_LEASE_REVOKE, op.id]
    return [_EMPTY]


def _compare_to_wire(compare: Compare) -> list[Any]:
    operand = _s(compare.operand) if isinstance(compare.operand, bytes) else compare.operand
    return [_s(compare.key), _s(compare.range_end), int(compare.target), int(compare.result), operand]


def _from_wire(wire: list[Any]) -> RequestOp | Command:
    kind = wire[0]
    if kind == _PUT:
        _, key, value, lease, flags = wire
        return PutRequest(_b(key), _b(value), lease, bool(flags & 1), bool(flags & 2), bool(flags & 4))
    if kind == _RANGE:
        _, key, end, limit, rev, order, target, flags, min_mod, max_mod, min_create, max_create = wire
        return RangeRequest(
            _b(key), _b(end), limit, rev, SortOrder(order), SortTarget(target), bool(flags & 1),
            bool(flags & 2), bool(flags & 4), min_mod, max_mod, min_create, max_create,
        )  # fmt: skip
    if kind == _DELETE:
        _, key, end, prev_kv = wire
        return DeleteRangeRequest(_b(key), _b(end), bool(prev_kv))
    if kind == _TXN:
        _, compares, success, failure = wire
        return TxnRequest(
            tuple(_compare_from_wire(c) for c in compares),
            tuple(_op_from_wire(o) for o in success),
            tuple(_op_from_wire(o) for o in failure),
        )
    if kind == _COMPACT:
        return CompactionRequest(wire[1], bool(wire[2]))
    if kind == _EMPTY:
        return EmptyOp()
    if kind == _LEASE_GRANT:
        return LeaseGrantRequest(int(wire[1]), int(wire[2]))
    if kind == _LEASE_REVOKE:
        return LeaseRevokeRequest(int(wire[1]))
    raise CommandDecodeError(f"unknown command kind {kind!r}")


def _op_from_wire(wire: list[Any]) -> RequestOp:
    op = _from_wire(wire)
    if isinstance(op, (CompactionRequest, LeaseGrantRequest, LeaseRevokeRequest)):
        raise CommandDecodeError(f"{type(op).__name__} inside a txn")
    return op


def _compare_from_wire(wire: list[Any]) -> Compare:
    key, end, target, result, operand = wire
    decoded = _b(operand) if isinstance(operand, str) else operand
    return Compare(_b(key), CompareTarget(target), CompareResult(result), decoded, _b(end))
