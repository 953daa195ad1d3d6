"""etcd's proto3 JSON mapping: request bodies to typed requests, typed responses to JSON.

The rules are grpc-gateway's (gogo jsonpb, proto field names, zero values omitted): bytes are padded
standard base64, int64 travels as a string (a bare number is accepted), enums by name or number,
lowerCamel aliases accepted on input, unknown fields ignored. Error texts for malformed values are Go's,
since clients and scripts see them.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from corral.store.errors import EtcdError, GrpcCode
from corral.store.types import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    EmptyOp,
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

JSON = dict[str, Any]
E = TypeVar("E", SortOrder, SortTarget, CompareResult, CompareTarget)

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_INT_TEXT = re.compile(r"-?[0-9]+\Z")
_BASE64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class DecodeError(EtcdError):
    """A body etcd's gateway could not unmarshal: code 3, Go's decoder message."""

    code = GrpcCode.INVALID_ARGUMENT


# -- request bodies ---------------------------------------------------------------------------------


def load_body(body: bytes, message: str) -> JSON:
    """Parse a request body as etcd's gateway does: empty or null is {}, trailing bytes are ignored."""
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        value = _first_json_value(body)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"json: cannot unmarshal {go_kind(value)} into Go value of type {message}")
    return value


def _first_json_value(body: bytes) -> Any:
    text = body.decode("utf-8", errors="replace").lstrip()
    if not text:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except RecursionError:
        raise DecodeError("exceeded max depth") from None
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            raise DecodeError("unexpected EOF") from None
        raise DecodeError(f"invalid character {text[exc.pos]!r} looking for beginning of value") from None
    return value


def go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}" if isinstance(value, float) else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def b64decode(value: Any) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise DecodeError(f"json: cannot unmarshal {go_kind(value)} into Go value of type []uint8")
    raw = value.encode("ascii", errors="replace")
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error:
        raise DecodeError(f"illegal base64 data at input byte {_bad_base64_offset(raw)}") from None


def _bad_base64_offset(raw: bytes) -> int:
    """Where Go's decoder gives up: the first byte outside the alphabet, else the unfinished quantum."""
    body = raw.rstrip(b"=")
    for offset, byte in enumerate(body):
        if byte not in _BASE64_ALPHABET:
            return offset
    padding = len(raw) - len(body)
    if len(raw) % 4 == 0 and padding <= 2:
        return len(body)  # padding where none can be
    return len(raw) - len(raw) % 4 if len(raw) % 4 else len(body)


def to_int(value: Any, go_type: str = "int64") -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise DecodeError(f"json: cannot unmarshal bool into Go value of type {go_type}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT_TEXT.match(value):
        number = int(value)
    elif isinstance(value, float):
        raise DecodeError(f"json: cannot unmarshal number {value} into Go value of type {go_type}")
    elif isinstance(value, str):
        raise DecodeError(f"json: cannot unmarshal string into Go value of type {go_type}")
    else:
        raise DecodeError(f"json: cannot unmarshal {go_kind(value)} into Go value of type {go_type}")
    low, high = (0, (1 << 64) - 1) if go_type == "uint64" else (INT64_MIN, INT64_MAX)
    if not low <= number <= high:
        raise DecodeError(f"json: cannot unmarshal number {value} into Go value of type {go_type}")
    return number


def to_bool(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise DecodeError(f"json: cannot unmarshal {go_kind(value)} into Go value of type bool")


def to_enum(value: Any, enum: type[E], proto_name: str) -> E:
    if value is None:
        return enum(0)
    if isinstance(value, str) and value in enum.__members__:
        return enum[value]
    if isinstance(value, int) and not isinstance(value, bool) and value in enum._value2member_map_:
        return enum(value)
    raise DecodeError(f"unknown value {json.dumps(value)} for enum {proto_name}")


def _fields(obj: JSON, aliases: dict[str, str]) -> dict[str, Any]:
    """Canonical field name -> value, for the fields this message knows (unknown ones are ignored).

    When a body spells a field both ways, the lowerCamel spelling wins, as in gogo's jsonpb.
    """
    fields: dict[str, Any] = {}
    camel: list[tuple[str, Any]] = []
    for name, value in obj.items():
        canonical = aliases.get(name)
        if canonical is None:
            continue
        if name == canonical:
            fields[canonical] = value
        else:
            camel.append((canonical, value))
    fields.update(camel)
    return fields


def _aliases(*names: str) -> dict[str, str]:
    """Proto names and their lowerCamel JSON names, both accepted on input."""
    table = {}
    for name in names:
        head, *rest = name.split("_")
        table[name] = name
        table[head + "".join(part.title() for part in rest)] = name
    return table


_RANGE_FIELDS = _aliases(
    "key", "range_end", "limit", "revision", "sort_order", "sort_target", "serializable", "keys_only",
    "count_only", "min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision",
)
_PUT_FIELDS = _aliases("key", "value", "lease", "prev_kv", "ignore_value", "ignore_lease")
_DELETE_FIELDS = _aliases("key", "range_end", "prev_kv")
_TXN_FIELDS = _aliases("compare", "success", "failure")
_COMPARE_FIELDS = _aliases(
    "result", "target", "key", "range_end", "version", "create_revision", "mod_revision", "value", "lease"
)
_OP_FIELDS = _aliases("request_range", "request_put", "request_delete_range", "request_txn")
_COMPACTION_FIELDS = _aliases("revision", "physical")


def decode_range(obj: JSON) -> RangeRequest:
    f = _fields(obj, _RANGE_FIELDS)
    return RangeRequest(
        key=b64decode(f.get("key")),
        range_end=b64decode(f.get("range_end")),
        limit=to_int(f.get("limit")),
        revision=to_int(f.get("revision")),
        sort_order=to_enum(f.get("sort_order"), SortOrder, "etcdserverpb.RangeRequest_SortOrder"),
        sort_target=to_enum(f.get("sort_target"), SortTarget, "etcdserverpb.RangeRequest_SortTarget"),
        serializable=to_bool(f.get("serializable")),
        keys_only=to_bool(f.get("keys_only")),
        count_only=to_bool(f.get("count_only")),
        min_mod_revision=to_int(f.get("min_mod_revision")),
        max_mod_revision=to_int(f.get("max_mod_revision")),
        min_create_revision=to_int(f.get("min_create_revision")),
        max_create_revision=to_int(f.get("max_create_revision")),
    )


def decode_put(obj: JSON) -> PutRequest:
    f = _fields(obj, _PUT_FIELDS)
    return PutRequest(
        key=b64decode(f.get("key")),
        value=b64decode(f.get("value")),
        lease=to_int(f.get("lease")),
        prev_kv=to_bool(f.get("prev_kv")),
        ignore_value=to_bool(f.get("ignore_value")),
        ignore_lease=to_bool(f.get("ignore_lease")),
    )


def decode_delete_range(obj: JSON) -> DeleteRangeRequest:
    f = _fields(obj, _DELETE_FIELDS)
    return DeleteRangeRequest(
        key=b64decode(f.get("key")), range_end=b64decode(f.get("range_end")), prev_kv=to_bool(f.get("prev_kv"))
    )


_COMPARE_OPERAND = {
    CompareTarget.VERSION: "version",
    CompareTarget.CREATE: "create_revision",
    CompareTarget.MOD: "mod_revision",
    CompareTarget.VALUE: "value",
    CompareTarget.LEASE: "lease",
}


def decode_compare(obj: Any) -> Compare:
    f = _fields(_object(obj, "etcdserverpb.Compare"), _COMPARE_FIELDS)
    target = to_enum(f.get("target"), CompareTarget, "etcdserverpb.Compare_CompareTarget")
    operand_field = _COMPARE_OPERAND[target]
    operand: int | bytes
    if target is CompareTarget.VALUE:
        operand = b64decode(f.get(operand_field))
    else:
        operand = to_int(f.get(operand_field))
    for other in _COMPARE_OPERAND.values():  # the other oneof members are still type-checked
        if other != operand_field and other in f:
            b64decode(f[other]) if other == "value" else to_int(f[other])
    return Compare(
        key=b64decode(f.get("key")),
        target=target,
        result=to_enum(f.get("result"), CompareResult, "etcdserverpb.Compare_CompareResult"),
        operand=operand,
        range_end=b64decode(f.get("range_end")),
    )


def decode_op(obj: Any) -> RequestOp:
    f = _fields(_object(obj, "etcdserverpb.RequestOp"), _OP_FIELDS)
    f = {name: value for name, value in f.items() if value is not None}
    if "request_range" in f:
        return decode_range(_object(f["request_range"], "etcdserverpb.RangeRequest"))
    if "request_put" in f:
        return decode_put(_object(f["request_put"], "etcdserverpb.PutRequest"))
    if "request_delete_range" in f:
        return decode_delete_range(_object(f["request_delete_range"], "etcdserverpb.DeleteRangeRequest"))
    if "request_txn" in f:
        return decode_txn(_object(f["request_txn"], "etcdserverpb.TxnRequest"))
    return EmptyOp()


def decode_txn(obj: JSON) -> TxnRequest:
    f = _fields(obj, _TXN_FIELDS)
    return TxnRequest(
        compare=tuple(decode_compare(c) for c in _array(f.get("compare"), "etcdserverpb.Compare")),
        success=tuple(decode_op(o) for o in _array(f.get("success"), "etcdserverpb.RequestOp")),
        failure=tuple(decode_op(o) for o in _array(f.get("failure"), "etcdserverpb.RequestOp")),
    )


def decode_compaction(obj: JSON) -> CompactionRequest:
    f = _fields(obj, _COMPACTION_FIELDS)
    return CompactionRequest(revision=to_int(f.get("revision")), physical=to_bool(f.get("physical")))


def _object(value: Any, message: str) -> JSON:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"json: cannot unmarshal {go_kind(value)} into Go value of type {message}")
    return value


def _array(value: Any, message: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"json: cannot unmarshal {go_kind(value)} into Go value of type []*{message}")
    return value


# -- responses --------------------------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def encode_kv(kv: KeyValue) -> JSON:
    """A KeyValue with zero fields left out (a DELETE event's kv is just key and mod_revision)."""
    out: JSON = {"key": b64encode(kv.key)}
    if kv.create_revision:
        out["create_revision"] = str(kv.create_revision)
    if kv.mod_revision:
        out["mod_revision"] = str(kv.mod_revision)
    if kv.version:
        out["version"] = str(kv.version)
    if kv.value:
        out["value"] = b64encode(kv.value)
    if kv.lease:
        out["lease"] = str(kv.lease)
    return out


HeaderFactory = Callable[[int], JSON]


def range_body(response: RangeResponse, header: JSON) -> JSON:
    out: JSON = {"header": header}
    if response.kvs:
        out["kvs"] = [encode_kv(kv) for kv in response.kvs]
    if response.more:
        out["more"] = True
    if response.count:
        out["count"] = str(response.count)
    return out


def put_body(response: PutResponse, header: JSON) -> JSON:
    out: JSON = {"header": header}
    if response.prev_kv is not None:
        out["prev_kv"] = encode_kv(response.prev_kv)
    return out


def delete_range_body(response: DeleteRangeResponse, header: JSON) -> JSON:
    out: JSON = {"header": header}
    if response.deleted:
        out["deleted"] = str(response.deleted)
    if response.prev_kvs:
        out["prev_kvs"] = [encode_kv(kv) for kv in response.prev_kvs]
    return out


def txn_body(response: TxnResponse, header: JSON) -> JSON:
    out: JSON = {"header": header}
    if response.succeeded:
        out["succeeded"] = True
    if response.responses:
        out["responses"] = [_response_op(op) for op in response.responses]
    return out


def _response_op(op: ResponseOp) -> JSON:
    # Ops inside a txn carry only their revision; a nested txn's header is empty.
    if isinstance(op, RangeResponse):
        return {"response_range": range_body(op, {"revision": str(op.revision)})}
    if isinstance(op, PutResponse):
        return {"response_put": put_body(op, {"revision": str(op.revision)})}
    if isinstance(op, DeleteRangeResponse):
        return {"response_delete_range": delete_range_body(op, {"revision": str(op.revision)})}
    return {"response_txn": txn_body(op, {})}


def dumps(body: JSON) -> bytes:
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        # orjson stops at 255 levels; a txn nested as deep as max-txn-ops allows needs more.
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# The stream routes (watch) decode their messages with the same rules as the unary ones.
aliases = _aliases
fields = _fields
object_ = _object
array = _array
