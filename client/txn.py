"""Request builders for KV operations and the transaction DSL.

    from corral.client import txn as t
    client.txn(
        compare=[t.version("config") == 0, t.mod("leader") < 42],
        success=[t.put("config", "v1"), t.get("leader")],
        failure=[t.get("config")],
    )

Compares use python-etcd3's names (`value`, `version`, `create`, `mod`, `lease`); a compare over a range
takes `range_end=` or `prefix=True`. Operations are `get`, `put`, `delete` and a nested `txn`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

__all__ = [
    "Compare",
    "DeleteOptions",
    "Op",
    "PutOptions",
    "RangeOptions",
    "create",
    "delete",
    "get",
    "lease",
    "mod",
    "put",
    "txn",
    "value",
    "version",
]

KeyLike = str | bytes
Json = dict[str, Any]
SortOrder = Literal["NONE", "ASCEND", "DESCEND"]
SortTarget = Literal["KEY", "VERSION", "CREATE", "MOD", "VALUE"]


class RangeOptions(TypedDict, total=False):
    """Options of a get, with etcd's names; `prefix` and `from_key` compute `range_end` for you."""

    range_end: KeyLike
    prefix: bool
    from_key: bool
    revision: int
    limit: int
    keys_only: bool
    count_only: bool
    serializable: bool
    sort_order: SortOrder
    sort_target: SortTarget
    min_mod_revision: int
    max_mod_revision: int
    min_create_revision: int
    max_create_revision: int


class PutOptions(TypedDict, total=False):
    lease: int
    prev_kv: bool
    ignore_value: bool
    ignore_lease: bool


class DeleteOptions(TypedDict, total=False):
    range_end: KeyLike
    prefix: bool
    from_key: bool
    prev_kv: bool


def to_bytes(data: KeyLike) -> bytes:
    return data.encode() if isinstance(data, str) else data


def encode(data: KeyLike) -> str:
    return base64.b64encode(to_bytes(data)).decode()


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with `prefix` (b"\\0" for an empty prefix: all keys)."""
    for i in range(len(prefix) - 1, -1, -1):
        if prefix[i] < 0xFF:
            return prefix[:i] + bytes([prefix[i] + 1])
    return b"\0"


def key_range(key: KeyLike, range_end: KeyLike | None, prefix: bool, from_key: bool) -> Json:
    raw = to_bytes(key)
    # An empty key with a prefix or from_key means every key: etcd wants key "\0" then, not "".
    body: Json = {"key": encode(raw or b"\0") if from_key or prefix else encode(raw)}
    if prefix:
        body["range_end"] = encode(prefix_end(raw))
    elif from_key:
        body["range_end"] = "AA=="  # b"\0": every key >= key
    elif range_end is not None:
        body["range_end"] = encode(range_end)
    return body


def range_body(key: KeyLike, options: RangeOptions, prefix: bool = False) -> Json:
    prefix = prefix or options.get("prefix", False)
    body = key_range(key, options.get("range_end"), prefix, options.get("from_key", False))
    for name in ("revision", "limit", "min_mod_revision", "max_mod_revision", "min_create_revision",
                 "max_create_revision"):  # fmt: skip
        if options.get(name):
            body[name] = str(options[name])
    for flag in ("keys_only", "count_only", "serializable"):
        if options.get(flag):
            body[flag] = True
    if options.get("sort_order", "NONE") != "NONE":
        body["sort_order"] = options["sort_order"]
    if options.get("sort_target", "KEY") != "KEY":
        body["sort_target"] = options["sort_target"]
    return body


def put_body(key: KeyLike, value: KeyLike, options: PutOptions) -> Json:
    body: Json = {"key": encode(key), "value": encode(value)}
    if options.get("lease"):
        body["lease"] = str(options["lease"])
    for flag in ("prev_kv", "ignore_value", "ignore_lease"):
        if options.get(flag):
            body[flag] = True
    return body


def delete_body(key: KeyLike, options: DeleteOptions) -> Json:
    body = key_range(key, options.get("range_end"), options.get("prefix", False), options.get("from_key", False))
    if options.get("prev_kv"):
        body["prev_kv"] = True
    return body


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction."""

    target: str
    key: bytes
    result: str
    operand: Json
    range_end: bytes | None = None

    def to_json(self) -> Json:
        body: Json = {"key": encode(self.key), "target": self.target, "result": self.result, **self.operand}
        if self.range_end is not None:
            body["range_end"] = encode(self.range_end)
        return body


_FIELDS = {"VALUE": "value", "VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision",
           "LEASE": "lease"}  # fmt: skip


class _Target:
    def __init__(self, target: str, key: KeyLike, range_end: KeyLike | None, prefix: bool) -> None:
        self._target = target
        raw = to_bytes(key)
        self._key = (raw or b"\0") if prefix else raw  # an empty prefix means every key: etcd wants "\0"
        self._range_end = prefix_end(raw) if prefix else (to_bytes(range_end) if range_end is not None else None)

    def _compare(self, result: str, operand: KeyLike | int) -> Compare:
        name = _FIELDS[self._target]
        encoded = encode(operand) if name == "value" else str(int(operand))  # type: ignore[arg-type]
        return Compare(self._target, self._key, result, {name: encoded}, self._range_end)

    def __eq__(self, other: object) -> Compare:  # type: ignore[override]
        return self._compare("EQUAL", other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> Compare:  # type: ignore[override]
        return self._compare("NOT_EQUAL", other)  # type: ignore[arg-type]

    def __lt__(self, other: KeyLike | int) -> Compare:
        return self._compare("LESS", other)

    def __gt__(self, other: KeyLike | int) -> Compare:
        return self._compare("GREATER", other)

    __hash__ = None  # type: ignore[assignment]


def value(key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False) -> _Target:
    return _Target("VALUE", key, range_end, prefix)


def version(key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False) -> _Target:
    return _Target("VERSION", key, range_end, prefix)


def create(key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False) -> _Target:
    return _Target("CREATE", key, range_end, prefix)


def mod(key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False) -> _Target:
    return _Target("MOD", key, range_end, prefix)


def lease(key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False) -> _Target:
    return _Target("LEASE", key, range_end, prefix)


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a transaction branch (`{"request_put": {...}}` and friends)."""

    kind: str
    body: Json

    def to_json(self) -> Json:
        return {self.kind: self.body}


def get(key: KeyLike, **options: Unpack[RangeOptions]) -> Op:
    return Op("request_range", range_body(key, options))


def put(key: KeyLike, value: KeyLike, **options: Unpack[PutOptions]) -> Op:
    return Op("request_put", put_body(key, value, options))


def delete(key: KeyLike, **options: Unpack[DeleteOptions]) -> Op:
    return Op("request_delete_range", delete_body(key, options))


def txn(compare: Sequence[Compare] = (), success: Sequence[Op] = (), failure: Sequence[Op] = ()) -> Op:
    """A nested transaction, as one operation of the outer one."""
    return Op("request_txn", txn_body(compare, success, failure))


def txn_body(compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> Json:
    body: Json = {}
    if compare:
        body["compare"] = [c.to_json() for c in compare]
    if success:
        body["success"] = [op.to_json() for op in success]
    if failure:
        body["failure"] = [op.to_json() for op in failure]
    return body
