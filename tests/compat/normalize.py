"""Normalize a KV response so that etcd's answer and Corral's answer compare equal when they agree.

What is allowed to differ, and nothing else:
* `cluster_id`, `member_id` and `raft_term` in the top-level header (each cluster has its own). The
  `revision` stays, and the `{"revision": N}` / `{}` headers inside a txn are compared as they are.
* The order of kvs that tie on a range's sort target (etcd sorts with Go's unstable sort). Each run of equal
  sort values is put in key order. When `limit` cut the list (`more`), which of the tied kvs of the *last* run
  made it in is also arbitrary, so that run is reduced to its sort value and length.
* gRPC code 9 (FailedPrecondition) is 412 in Debian's etcd build and 400 upstream: both count as 400.
* For requests marked `loose_error` (the error text is Go's JSON decoder message), only the status and
  `code` of an error are compared.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from tests.compat.opgen import SORT_ORDERS, SORT_TARGETS, camel

Json = Any

DROPPED_HEADER_FIELDS = ("cluster_id", "member_id", "raft_term")
FAILED_PRECONDITION = 9


def normalize(
    status: int, body: Json, *, path: str, request: Json, loose_error: bool = False
) -> tuple[int, Json]:
    """Return a comparable (status, body) for the response to `request` sent to `path`."""
    body = copy.deepcopy(body)
    if isinstance(body, dict) and status != 200 and "code" in body:
        if body.get("code") == FAILED_PRECONDITION and status == 412:
            status = 400
        if loose_error:
            body = {"code": body.get("code")}
        return status, body
    if not isinstance(body, dict):
        return status, body
    header = body.get("header")
    if isinstance(header, dict):
        for name in DROPPED_HEADER_FIELDS:
            header.pop(name, None)
    if isinstance(request, dict):
        if path.endswith("/kv/range"):
            _range(request, body)
        elif path.endswith("/kv/txn"):
            _txn(request, body)
    return status, body


def _get(message: dict[str, Json], field: str) -> Json:
    """A request field under its proto name or its lowerCamel alias."""
    if field in message:
        return message[field]
    return message.get(camel(field))


def _enum(value: Json, names: tuple[str, ...]) -> str | None:
    if value is None:
        return names[0]
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return names[value] if 0 <= value < len(names) else None
    return value if value in names else None


def _key(kv: Json) -> bytes:
    return base64.b64decode(kv.get("key", "")) if isinstance(kv, dict) else b""


def _range(request: dict[str, Json], response: dict[str, Json]) -> None:
    kvs = response.get("kvs")
    if not isinstance(kvs, list) or not kvs:
        return
    target = _enum(_get(request, "sort_target"), SORT_TARGETS)
    order = _enum(_get(request, "sort_order"), SORT_ORDERS)
    if target is None or order is None or target == "KEY":
        return  # key order has no ties; an invalid enum is an error response anyway
    hidden_value = target == "VALUE" and _get(request, "keys_only") is True

    def sort_value(kv: Json) -> Json:
        if not isinstance(kv, dict):
            return repr(kv)
        if hidden_value:
            return None  # keys_only hides the values: every kv may tie with every other
        if target == "VALUE":
            return kv.get("value", "")
        field = {"VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision"}[target]
        return int(kv.get(field, "0"))

    runs: list[tuple[Json, list[Json]]] = []
    for kv in kvs:
        value = sort_value(kv)
        if runs and runs[-1][0] == value:
            runs[-1][1].append(kv)
        else:
            runs.append((value, [kv]))
    normalized: list[Json] = []
    for i, (value, run) in enumerate(runs):
        if response.get("more") and i == len(runs) - 1:
            normalized.append({"<tied run cut by limit>": {"sort_value": value, "length": len(run)}})
        else:
            normalized.extend(sorted(run, key=_key))
    response["kvs"] = normalized


def _txn(request: dict[str, Json], response: dict[str, Json]) -> None:
    branch = _get(request, "success") if response.get("succeeded") else _get(request, "failure")
    responses = response.get("responses")
    if not isinstance(branch, list) or not isinstance(responses, list):
        return
    for op, result in zip(branch, responses, strict=False):
        if not isinstance(op, dict) or not isinstance(result, dict):
            continue
        inner_range = _get(op, "request_range")
        inner_txn = _get(op, "request_txn")
        if isinstance(inner_range, dict) and isinstance(result.get("response_range"), dict):
            _range(inner_range, result["response_range"])
        elif isinstance(inner_txn, dict) and isinstance(result.get("response_txn"), dict):
            _txn(inner_txn, result["response_txn"])
