"""The normalizer forgives exactly what etcd leaves unspecified, and nothing more. No servers needed."""

from __future__ import annotations

from typing import Any

from tests.compat.normalize import normalize
from tests.compat.opgen import enc, generate, prefix_end

HEADER = {"cluster_id": "1", "member_id": "2", "revision": "9", "raft_term": "3"}


def kv(key: bytes, version: int, value: bytes = b"v") -> dict[str, Any]:
    return {
        "key": enc(key),
        "create_revision": "2",
        "mod_revision": "3",
        "version": str(version),
        "value": enc(value),
    }


def rng(kvs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"header": dict(HEADER), "kvs": kvs, "count": str(len(kvs)), **extra}


BY_VERSION = {"key": enc(b"a"), "range_end": enc(b"\x00"), "sort_target": "VERSION"}


def test_header_ids_dropped_revision_kept() -> None:
    status, body = normalize(200, {"header": dict(HEADER)}, path="/v3/kv/put", request={"key": "YQ=="})
    assert (status, body) == (200, {"header": {"revision": "9"}})


def test_ties_are_put_in_key_order_but_the_sort_is_still_checked() -> None:
    one = rng([kv(b"b", 1), kv(b"a", 1), kv(b"c", 2)])
    other = rng([kv(b"a", 1), kv(b"b", 1), kv(b"c", 2)])
    wrong = rng([kv(b"c", 2), kv(b"a", 1), kv(b"b", 1)])
    norm = [normalize(200, r, path="/v3/kv/range", request=BY_VERSION) for r in (one, other, wrong)]
    assert norm[0] == norm[1]
    assert norm[0] != norm[2]


def test_key_order_is_never_relaxed() -> None:
    request = {"key": enc(b"a"), "range_end": enc(b"\x00"), "sort_order": "DESCEND", "sort_target": 0}
    a = normalize(200, rng([kv(b"b", 1), kv(b"a", 1)]), path="/v3/kv/range", request=request)
    b = normalize(200, rng([kv(b"a", 1), kv(b"b", 1)]), path="/v3/kv/range", request=request)
    assert a != b


def test_tied_run_cut_by_limit_compares_by_value_and_length() -> None:
    request = {**BY_VERSION, "limit": "2"}
    a = normalize(200, rng([kv(b"z", 1), kv(b"b", 2)], more=True), path="/v3/kv/range", request=request)
    b = normalize(200, rng([kv(b"z", 1), kv(b"c", 2)], more=True), path="/v3/kv/range", request=request)
    c = normalize(200, rng([kv(b"y", 1), kv(b"c", 2)], more=True), path="/v3/kv/range", request=request)
    assert a == b
    assert a != c  # the complete run before the cut is still compared


def test_sort_in_nested_txn_ranges() -> None:
    request = {"success": [{"request_txn": {"success": [{"requestRange": {**BY_VERSION, "sortTarget": 1}}]}}]}

    def txn(kvs: list[dict[str, Any]]) -> dict[str, Any]:
        inner = {
            "header": {},
            "succeeded": True,
            "responses": [{"response_range": {"header": {"revision": "9"}, "kvs": kvs, "count": "2"}}],
        }
        return {"header": dict(HEADER), "succeeded": True, "responses": [{"response_txn": inner}]}

    a = normalize(200, txn([kv(b"a", 1), kv(b"b", 1)]), path="/v3/kv/txn", request=request)
    b = normalize(200, txn([kv(b"b", 1), kv(b"a", 1)]), path="/v3/kv/txn", request=request)
    assert a == b


def test_errors() -> None:
    def err(code: int, message: str) -> dict[str, Any]:
        return {"error": message, "message": message, "code": code}

    assert normalize(412, err(9, "x"), path="/v3/kv/put", request={}) == (400, err(9, "x"))
    assert normalize(412, err(3, "x"), path="/v3/kv/put", request={}) == (412, err(3, "x"))
    go = normalize(
        400,
        err(3, "json: cannot unmarshal string into Go value of type bool"),
        path="/v3/kv/range",
        request={},
        loose_error=True,
    )
    assert go == normalize(400, err(3, "bool expected"), path="/v3/kv/range", request={}, loose_error=True)
    assert go != normalize(400, err(2, "bool expected"), path="/v3/kv/range", request={}, loose_error=True)
    assert normalize(400, err(3, "a"), path="/v3/kv/range", request={}) != normalize(
        400, err(3, "b"), path="/v3/kv/range", request={}
    )


def test_prefix_end() -> None:
    assert prefix_end(b"a/") == b"a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\x00"


def test_generator_is_reproducible_and_prefix_stable() -> None:
    long, short = generate(7, 300), generate(7, 120)
    assert [op.content() for op in long[:120]] == [op.content() for op in short]
    assert [op.label for op in long[:200]].count("txn:too-many-ops") == 1
    assert [op.label for op in long[200:400]].count("put:too-large") <= 1
