"""Differential test: the same KV requests to a real etcd and to Corral must get the same answers.

* `test_random_ops_match_etcd`: seeded random sequences from `opgen` (seeds 1, 2, 3 x 1000 ops by default;
  `CORRAL_DIFF_SEED`, `CORRAL_DIFF_OPS` choose others). Both servers start empty, get every op in the same
  order, and each pair of answers is compared after `normalize`. The first n ops of a seed do not depend on
  n, so `CORRAL_DIFF_OPS=<failing index + 1>` replays up to the failure. By default a seed stops at its
  first mismatch; `CORRAL_DIFF_MAX_MISMATCHES=N` keeps going (reads only; a write mismatch always stops it).
* `test_reference_examples`: the examples of sections 2.1-2.5 (and 3) of the reference
  (shared/reference/etcd-json-api.md), in one scripted order, with the exact answers expected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.harness import Exchange, clip, could_write, describe, normalized, send
from tests.compat.opgen import COMPACTION, DELETE, PUT, RANGE, TXN, Op, OpGen, enc
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.etcd

Json = Any

SEEDS = [int(os.environ["CORRAL_DIFF_SEED"])] if os.environ.get("CORRAL_DIFF_SEED") else [1, 2, 3]
N_OPS = int(os.environ.get("CORRAL_DIFF_OPS", "1000"))
MAX_MISMATCHES = int(os.environ.get("CORRAL_DIFF_MAX_MISMATCHES", "1"))
CONTEXT_OPS = 4


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=httpx.Timeout(15.0))


def _replay(seed: int, index: int) -> str:
    return (
        f"replay: CORRAL_DIFF_SEED={seed} CORRAL_DIFF_OPS={index + 1} "
        f".venv/bin/python -m pytest tests/compat -k test_random_ops_match_etcd"
    )


def _report(
    seed: int,
    index: int,
    op: Op,
    ref: Exchange,
    got: Exchange,
    norm_ref: Json,
    norm_got: Json,
    history: list[str],
    log_path: Path,
) -> str:
    loose = " [loose: status+code only]" if op.loose_error else ""
    lines = [
        f"MISMATCH seed={seed} op #{index} ({op.label}){loose}",
        f"request: {describe(op)}",
        f"etcd   {ref.summary}",
        f"corral {got.summary}",
        f"normalized etcd:   {clip(json.dumps(norm_ref, sort_keys=True))}",
        f"normalized corral: {clip(json.dumps(norm_got, sort_keys=True))}",
    ]
    if history:
        lines.append("preceding ops:")
        lines.extend(f"  {line}" for line in history)
    lines.append(_replay(seed, index))
    lines.append(f"every exchange of this run: {log_path}")
    return "\n".join(lines)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda seed: f"seed{seed}")
def test_random_ops_match_etcd(
    seed: int, fresh_pair: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    etcd, corral = fresh_pair
    gen = OpGen(seed)
    log_path = tmp_path / f"exchanges-seed{seed}.jsonl"
    mismatches: list[str] = []
    history: list[str] = []
    with _client(etcd) as to_etcd, _client(corral) as to_corral, open(log_path, "w") as log:
        for index in range(N_OPS):
            op = gen.next_op()
            ref = send(to_etcd, op)
            got = send(to_corral, op)
            gen.observe(op, ref.status, ref.body)
            request = clip(op.content().decode("utf-8", "replace"), 20000)
            entry = {
                "index": index,
                "path": op.path,
                "request": request,
                "etcd": ref.summary,
                "corral": got.summary,
            }
            log.write(json.dumps(entry) + "\n")
            norm_ref, norm_got = normalized(op, ref), normalized(op, got)
            if norm_ref != norm_got:
                mismatches.append(_report(seed, index, op, ref, got, norm_ref, norm_got, history, log_path))
                if len(mismatches) >= MAX_MISMATCHES or could_write(op):
                    break
            history = [
                *history,
                f"#{index} {op.method} {op.path} {op.content()[:300].decode('utf-8', 'replace')} -> "
                f"{ref.summary[:200]}",
            ][-CONTEXT_OPS:]
    if mismatches:
        pytest.fail(f"{len(mismatches)} mismatch(es) with etcd\n\n" + "\n\n".join(mismatches), pytrace=False)


# ---- the reference examples ------------------------------------------------------------------------------


def H(revision: int) -> dict[str, str]:  # noqa: N802 - named after the reference's notation
    return {"revision": str(revision)}


def kv(key: bytes, create: int, mod: int, version: int, value: bytes | None = b"") -> dict[str, str]:
    """A KeyValue as it appears on the wire; value None means keys_only (no value field)."""
    out = {"key": enc(key), "create_revision": str(create), "mod_revision": str(mod), "version": str(version)}
    if value:
        out["value"] = enc(value)
    return out


def error(code: int, message: str) -> dict[str, Json]:
    return {"error": message, "message": message, "code": code}


FUTURE = "etcdserver: mvcc: required revision is a future revision"
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
PREFIX, PREFIX_END = enc(b"key/"), enc(b"key0")
ALL = enc(b"\x00")

# (what, path, request, status, expected normalized body). Revisions follow from this order, starting at 1.
EXAMPLES: list[tuple[str, str, Json, int, Json]] = [
    ("setup put foo", PUT, {"key": enc(b"foo"), "value": enc(b"bar")}, 200, {"header": H(2)}),
    *[
        (
            f"setup put key/{c}",
            PUT,
            {"key": enc(b"key/" + c.encode()), "value": enc(b"v" + c.encode())},
            200,
            {"header": H(3 + i)},
        )
        for i, c in enumerate("abcde")
    ],
    # 2.1 range
    (
        "2.1 single key",
        RANGE,
        {"key": enc(b"foo")},
        200,
        {"header": H(7), "kvs": [kv(b"foo", 2, 2, 1, b"bar")], "count": "1"},
    ),
    ("2.1 missing key", RANGE, {"key": enc(b"nope")}, 200, {"header": H(7)}),
    (
        "2.1 prefix limit 2",
        RANGE,
        {"key": PREFIX, "range_end": PREFIX_END, "limit": 2},
        200,
        {
            "header": H(7),
            "kvs": [kv(b"key/a", 3, 3, 1, b"va"), kv(b"key/b", 4, 4, 1, b"vb")],
            "more": True,
            "count": "5",
        },
    ),
    (
        "2.1 count_only ignores limit",
        RANGE,
        {"key": PREFIX, "range_end": PREFIX_END, "count_only": True, "limit": 2},
        200,
        {"header": H(7), "count": "5"},
    ),
    (
        "2.1 keys_only min_create_revision",
        RANGE,
        {"key": PREFIX, "range_end": PREFIX_END, "keys_only": True, "min_create_revision": 5},
        200,
        {
            "header": H(7),
            "kvs": [kv(b"key/c", 5, 5, 1, None), kv(b"key/d", 6, 6, 1, None), kv(b"key/e", 7, 7, 1, None)],
            "count": "5",
        },
    ),
    (
        "2.1 DESCEND by KEY, limit as string",
        RANGE,
        {
            "key": PREFIX,
            "range_end": PREFIX_END,
            "keys_only": True,
            "sort_order": "DESCEND",
            "sort_target": "KEY",
            "limit": "2",
        },
        200,
        {
            "header": H(7),
            "kvs": [kv(b"key/e", 7, 7, 1, None), kv(b"key/d", 6, 6, 1, None)],
            "more": True,
            "count": "5",
        },
    ),
    (
        "2.1 all keys",
        RANGE,
        {"key": ALL, "range_end": ALL, "keys_only": True},
        200,
        {
            "header": H(7),
            "kvs": [
                kv(b"foo", 2, 2, 1, None),
                *[kv(b"key/" + c.encode(), 3 + i, 3 + i, 1, None) for i, c in enumerate("abcde")],
            ],
            "count": "6",
        },
    ),
    (
        "2.1 from key/c",
        RANGE,
        {"key": enc(b"key/c"), "range_end": ALL, "keys_only": True},
        200,
        {
            "header": H(7),
            "kvs": [kv(b"key/c", 5, 5, 1, None), kv(b"key/d", 6, 6, 1, None), kv(b"key/e", 7, 7, 1, None)],
            "count": "3",
        },
    ),
    ("2.1 range_end < key", RANGE, {"key": enc(b"key/c"), "range_end": enc(b"key/a")}, 200, {"header": H(7)}),
    (
        "2.1 at an older revision",
        RANGE,
        {"key": PREFIX, "range_end": PREFIX_END, "keys_only": True, "revision": 4},
        200,
        {"header": H(7), "kvs": [kv(b"key/a", 3, 3, 1, None), kv(b"key/b", 4, 4, 1, None)], "count": "2"},
    ),
    ("2.1 future revision", RANGE, {"key": enc(b"foo"), "revision": 100}, 400, error(11, FUTURE)),
    ("1.4 no key", RANGE, {}, 400, error(3, "etcdserver: key is not provided")),
    # 2.2 put
    ("2.2 ignore_value", PUT, {"key": enc(b"foo"), "ignore_value": True}, 200, {"header": H(8)}),
    (
        "2.2 prev_kv",
        PUT,
        {"key": enc(b"foo"), "value": enc(b"baz"), "prev_kv": True},
        200,
        {"header": H(9), "prev_kv": kv(b"foo", 2, 8, 2, b"bar")},
    ),
    (
        "2.2 prev_kv of a new key",
        PUT,
        {"key": enc(b"brandnew"), "value": enc(b"1"), "prev_kv": True},
        200,
        {"header": H(10)},
    ),
    (
        "2.2 ignore_value on a missing key",
        PUT,
        {"key": enc(b"newkey"), "ignore_value": True},
        400,
        error(3, "etcdserver: key not found"),
    ),
    (
        "2.2 missing lease",
        PUT,
        {"key": enc(b"foo"), "value": enc(b"x"), "lease": "12345"},
        404,
        error(5, "etcdserver: requested lease not found"),
    ),
    (
        "2.2 ignore_value with a value",
        PUT,
        {"key": enc(b"foo"), "value": enc(b"x"), "ignore_value": True},
        400,
        error(3, "etcdserver: value is provided"),
    ),
    (
        "2.2 ignore_lease with a lease",
        PUT,
        {"key": enc(b"foo"), "lease": "5", "ignore_lease": True},
        400,
        error(3, "etcdserver: lease is provided"),
    ),
    ("1.2 unpadded base64", RANGE, {"key": "a2V5L2E"}, 400, error(3, "illegal base64 data at input byte 4")),
    # 2.3 deleterange
    ("2.3 delete a missing key", DELETE, {"key": enc(b"missing")}, 200, {"header": H(10)}),
    (
        "2.3 delete with prev_kv",
        DELETE,
        {"key": enc(b"brandnew"), "prev_kv": True},
        200,
        {"header": H(11), "deleted": "1", "prev_kvs": [kv(b"brandnew", 10, 10, 1, b"1")]},
    ),
    (
        "2.3 delete a range",
        DELETE,
        {"key": enc(b"key/d"), "range_end": PREFIX_END},
        200,
        {"header": H(12), "deleted": "2"},
    ),
    # 2.4 txn
    (
        "2.4 value compare, puts share one revision",
        TXN,
        {
            "compare": [{"key": enc(b"foo"), "result": "EQUAL", "target": "VALUE", "value": enc(b"baz")}],
            "success": [
                {"request_put": {"key": enc(b"t1"), "value": enc(b"x")}},
                {"request_put": {"key": enc(b"t2"), "value": enc(b"y"), "prev_kv": True}},
                {"request_range": {"key": enc(b"t1")}},
                {"request_delete_range": {"key": enc(b"nothing")}},
            ],
            "failure": [],
        },
        200,
        {
            "header": H(13),
            "succeeded": True,
            "responses": [
                {"response_put": {"header": H(13)}},
                {"response_put": {"header": H(13)}},
                {"response_range": {"header": H(13), "kvs": [kv(b"t1", 13, 13, 1, b"x")], "count": "1"}},
                {"response_delete_range": {"header": H(13)}},
            ],
        },
    ),
    (
        "2.4 missing key: version 0 and create 0 hold",
        TXN,
        {
            "compare": [
                {"key": enc(b"missing"), "target": "VERSION", "version": "0"},
                {"key": enc(b"missing"), "target": "CREATE", "create_revision": 0},
            ],
            "success": [{"request_range": {"key": enc(b"foo")}}],
        },
        200,
        {
            "header": H(13),
            "succeeded": True,
            "responses": [
                {"response_range": {"header": H(13), "kvs": [kv(b"foo", 2, 9, 3, b"baz")], "count": "1"}}
            ],
        },
    ),
    (
        "2.4 missing key: VALUE compare fails",
        TXN,
        {
            "compare": [
                {"key": enc(b"missing"), "result": "NOT_EQUAL", "target": "VALUE", "value": enc(b"z")}
            ],
            "success": [{"request_put": {"key": enc(b"never"), "value": enc(b"1")}}],
            "failure": [{"request_range": {"key": enc(b"t2"), "count_only": True}}],
        },
        200,
        {"header": H(13), "responses": [{"response_range": {"header": H(13), "count": "1"}}]},
    ),
    (
        "2.4 range compare and nested txn",
        TXN,
        {
            "compare": [
                {
                    "key": PREFIX,
                    "range_end": PREFIX_END,
                    "result": "LESS",
                    "target": "MOD",
                    "mod_revision": "6",
                }
            ],
            "success": [
                {
                    "request_txn": {
                        "compare": [
                            {
                                "key": enc(b"t1"),
                                "result": "GREATER",
                                "target": "CREATE",
                                "create_revision": "0",
                            }
                        ],
                        "success": [{"request_put": {"key": enc(b"nested"), "value": enc(b"n")}}],
                    }
                }
            ],
        },
        200,
        {
            "header": H(14),
            "succeeded": True,
            "responses": [
                {
                    "response_txn": {
                        "header": {},
                        "succeeded": True,
                        "responses": [{"response_put": {"header": H(14)}}],
                    }
                }
            ],
        },
    ),
    (
        "2.4 op headers move after the first write",
        TXN,
        {
            "success": [
                {"request_range": {"key": enc(b"foo"), "count_only": True}},
                {"request_delete_range": {"key": enc(b"nothing")}},
                {"request_put": {"key": enc(b"tx"), "value": enc(b"1")}},
                {"request_range": {"key": enc(b"foo"), "count_only": True}},
            ]
        },
        200,
        {
            "header": H(15),
            "succeeded": True,
            "responses": [
                {"response_range": {"header": H(14), "count": "1"}},
                {"response_delete_range": {"header": H(14)}},
                {"response_put": {"header": H(15)}},
                {"response_range": {"header": H(15), "count": "1"}},
            ],
        },
    ),
    ("2.4 empty txn", TXN, {}, 200, {"header": H(15), "succeeded": True}),
    (
        "2.4 put under a delete",
        TXN,
        {
            "success": [
                {"request_put": {"key": enc(b"tx"), "value": enc(b"1")}},
                {"request_delete_range": {"key": enc(b"tx")}},
            ]
        },
        400,
        error(3, "etcdserver: duplicate key given in txn request"),
    ),
    ("2.4 empty op", TXN, {"success": [{}]}, 400, error(3, "etcdserver: key not found")),
    # 2.5 compaction
    ("2.5 compact", COMPACTION, {"revision": "5"}, 200, {"header": H(15)}),
    ("2.5 compact again", COMPACTION, {"revision": "5", "physical": True}, 400, error(11, COMPACTED)),
    ("2.5 compact in the future", COMPACTION, {"revision": "16"}, 400, error(11, FUTURE)),
    ("2.5 read below the compaction", RANGE, {"key": enc(b"foo"), "revision": 4}, 400, error(11, COMPACTED)),
    (
        "2.5 read at the compaction",
        RANGE,
        {"key": enc(b"foo"), "revision": 5},
        200,
        {"header": H(15), "kvs": [kv(b"foo", 2, 2, 1, b"bar")], "count": "1"},
    ),
    (
        "2.4 txn range below the compaction",
        TXN,
        {"success": [{"request_range": {"key": enc(b"foo"), "revision": "3"}}]},
        400,
        error(11, COMPACTED),
    ),
    (
        "2.4 txn range at a negative revision",
        TXN,
        {"success": [{"request_range": {"key": enc(b"foo"), "revision": "-1"}}]},
        400,
        error(11, COMPACTED),
    ),
    (
        "8 negative revision outside a txn is latest",
        RANGE,
        {"key": enc(b"tx"), "revision": "-1"},
        200,
        {"header": H(15), "kvs": [kv(b"tx", 15, 15, 1, b"1")], "count": "1"},
    ),
    # 3 revision model: put, put, delete, put
    ("3 put vv", PUT, {"key": enc(b"vv"), "value": enc(b"1")}, 200, {"header": H(16)}),
    ("3 put vv again", PUT, {"key": enc(b"vv"), "value": enc(b"2")}, 200, {"header": H(17)}),
    ("3 delete vv", DELETE, {"key": enc(b"vv")}, 200, {"header": H(18), "deleted": "1"}),
    ("3 put vv anew", PUT, {"key": enc(b"vv"), "value": enc(b"3")}, 200, {"header": H(19)}),
    (
        "3 vv now",
        RANGE,
        {"key": enc(b"vv")},
        200,
        {"header": H(19), "kvs": [kv(b"vv", 19, 19, 1, b"3")], "count": "1"},
    ),
    (
        "3 vv at 17",
        RANGE,
        {"key": enc(b"vv"), "revision": 17},
        200,
        {"header": H(19), "kvs": [kv(b"vv", 16, 17, 2, b"2")], "count": "1"},
    ),
    ("3 vv at 18", RANGE, {"key": enc(b"vv"), "revision": 18}, 200, {"header": H(19)}),
]


def test_reference_examples(fresh_pair: tuple[ServerProcess, ServerProcess]) -> None:
    etcd, corral = fresh_pair
    failures: list[str] = []
    with _client(etcd) as to_etcd, _client(corral) as to_corral:
        for what, path, request, status, expected in EXAMPLES:
            op = Op(path, request, label=what)
            for name, client in (("etcd", to_etcd), ("corral", to_corral)):
                answer = send(client, op)
                got_status, media_type, _, got_body = normalized(op, answer)
                if (got_status, media_type, got_body) != (status, "application/json", expected):
                    failures.append(
                        f"{name}: {what}\n  request: {describe(op)}\n  expected [{status}] "
                        f"{json.dumps(expected)}\n  got      {answer.summary}"
                    )
    assert not failures, "reference examples not matched:\n" + "\n".join(failures)
