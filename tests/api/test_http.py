"""etcd's HTTP/JSON gateway behaviour, over real HTTP against a real Corral process.

Covers every route Corral serves (KV, maintenance status, health, version), the framing rules around
them (v3beta rewrite, 404/405/OPTIONS, CORS), the proto3 JSON mapping (int64 as strings, zero fields
left out, lowerCamel aliases, unknown fields, empty bodies, trailing bytes) and the error catalogue of
the etcd JSON API reference (sections 1.4 and 2). Every error is checked for etcd's exact body, its HTTP status,
and for leaving the store's revision where it was: a rejected request must change nothing.

The `client` fixtures fail a test on any 5xx answer (see conftest.py).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.servers import ServerProcess

Json = Any
Ns = Callable[[str], bytes]

CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "POST, GET, OPTIONS, PUT, DELETE",
    "access-control-allow-headers": "accept, content-type, authorization",
}
HEADER_FIELDS = {"cluster_id", "member_id", "revision", "raft_term"}
KV_ROUTES = ["/v3/kv/range", "/v3/kv/put", "/v3/kv/deleterange", "/v3/kv/txn", "/v3/kv/compaction"]
POST_ROUTES = [*KV_ROUTES, "/v3/maintenance/status"]
GRPC_TO_HTTP = {1: 408, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400,
                12: 501, 13: 500, 14: 503, 15: 500, 16: 401}  # fmt: skip

KEY_NOT_PROVIDED = "etcdserver: key is not provided"
KEY_NOT_FOUND = "etcdserver: key not found"
LEASE_NOT_FOUND = "etcdserver: requested lease not found"
FUTURE_REV = "etcdserver: mvcc: required revision is a future revision"
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
TOO_MANY_OPS = "etcdserver: too many operations in txn request"
DUPLICATE_KEY = "etcdserver: duplicate key given in txn request"
TOO_LARGE = "etcdserver: request is too large"
GRPC_TOO_LARGE = re.compile(r"grpc: received message larger than max \((\d+) vs\. (\d+)\)\Z")
SMALL_RECEIVE_LIMIT = 2048 + 512 * 1024  # --max-request-bytes 2048 plus gRPC's 512 KiB allowance


# -- helpers ----------------------------------------------------------------------------------------


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def ok(client: httpx.Client, path: str, body: Json = None, *, content: bytes | None = None) -> Json:
    """POST and expect a 200 JSON object in etcd's framing; return the decoded body."""
    response = client.post(path, content=json.dumps(body) if content is None else content)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert not response.content.endswith(b"\n")
    out = response.json()
    assert isinstance(out, dict)
    if "header" in out:
        assert set(out["header"]) == HEADER_FIELDS
        assert all(isinstance(v, str) and v.isdigit() for v in out["header"].values()), out["header"]
    return out


def revision(client: httpx.Client) -> int:
    return int(ok(client, "/v3/kv/range", {"key": b64("revision-probe")})["header"]["revision"])


def put(client: httpx.Client, key: bytes, value: bytes = b"v", **extra: Json) -> int:
    out = ok(client, "/v3/kv/put", {"key": b64(key), "value": b64(value), **extra})
    return int(out["header"]["revision"])


def get(client: httpx.Client, key: bytes, **extra: Json) -> Json:
    return ok(client, "/v3/kv/range", {"key": b64(key), **extra})


def get_kv(client: httpx.Client, key: bytes) -> Json | None:
    kvs = get(client, key).get("kvs")
    return kvs[0] if kvs else None


def assert_error(response: httpx.Response, status: int, code: int, message: str | None = None) -> str:
    """An etcd unary error: `{"error","message","code"}` (same text twice), JSON, with CORS headers."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "message", "code"}, body
    assert body["error"] == body["message"]
    assert body["code"] == code, body
    assert GRPC_TO_HTTP[code] == status
    if message is not None:
        assert body["message"] == message
    for name, value in CORS.items():
        assert response.headers[name] == value
    return str(body["message"])


def assert_rejected(
    client: httpx.Client,
    path: str,
    body: Json = None,
    *,
    status: int,
    code: int,
    message: str | None = None,
    content: bytes | None = None,
) -> str:
    """The request fails with this error and the store's revision does not move."""
    before = revision(client)
    response = client.post(path, content=json.dumps(body) if content is None else content)
    text = assert_error(response, status, code, message)
    assert revision(client) == before, f"rejected {path} still changed the revision"
    return text


def nested_txn(depth: int, leaf: Json) -> Json:
    """A txn `depth` levels deep whose innermost success branch holds `leaf`."""
    txn: Json = {"success": [leaf]}
    for _ in range(depth - 1):
        txn = {"success": [{"request_txn": txn}]}
    return txn


# -- routes -----------------------------------------------------------------------------------------


def test_put_and_range_round_trip(client: httpx.Client, ns: Ns) -> None:
    key = ns("k")
    out = ok(client, "/v3/kv/put", {"key": b64(key), "value": b64("bar")})
    assert set(out) == {"header"}
    rev = int(out["header"]["revision"])
    got = get(client, key)
    assert got["kvs"] == [{"key": b64(key), "create_revision": str(rev), "mod_revision": str(rev),
                           "version": "1", "value": b64("bar")}]  # fmt: skip
    assert got["count"] == "1"
    assert int(got["header"]["revision"]) >= rev

    rev2 = put(client, key, b"baz")
    assert rev2 == rev + 1
    kv = get_kv(client, key)
    assert kv == {"key": b64(key), "create_revision": str(rev), "mod_revision": str(rev2), "version": "2",
                  "value": b64("baz")}  # fmt: skip


def test_header_identifies_the_member(client: httpx.Client, ns: Ns) -> None:
    first = ok(client, "/v3/kv/put", {"key": b64(ns("k")), "value": b64("x")})["header"]
    second = get(client, ns("k"))["header"]
    assert first["cluster_id"] == second["cluster_id"] != "0"
    assert first["member_id"] == second["member_id"] != "0"
    assert first["raft_term"] == second["raft_term"] != "0"


def test_put_prev_kv_and_ignore_value(client: httpx.Client, ns: Ns) -> None:
    key = ns("k")
    out = ok(client, "/v3/kv/put", {"key": b64(key), "value": b64("one"), "prev_kv": True})
    assert set(out) == {"header"}  # a new key has no prev_kv
    created = int(out["header"]["revision"])
    out = ok(client, "/v3/kv/put", {"key": b64(key), "ignore_value": True, "prev_kv": True})
    kept = int(out["header"]["revision"])
    assert out["prev_kv"] == {"key": b64(key), "create_revision": str(created), "mod_revision": str(created),
                              "version": "1", "value": b64("one")}  # fmt: skip
    assert get_kv(client, key) == {"key": b64(key), "create_revision": str(created), "version": "2",
                                   "mod_revision": str(kept), "value": b64("one")}  # fmt: skip


def test_range_selection_and_options(client: httpx.Client, ns: Ns) -> None:
    prefix = ns("p/")
    revs = {name: put(client, prefix + name.encode(), f"v{name}".encode()) for name in "abcde"}
    end = b64(prefix_end(prefix))

    out = ok(client, "/v3/kv/range", {"key": b64(prefix), "range_end": end, "limit": "2"})
    assert [unb64(kv["key"]) for kv in out["kvs"]] == [prefix + b"a", prefix + b"b"]
    assert out["more"] is True and out["count"] == "5"

    out = ok(client, "/v3/kv/range", {"key": b64(prefix), "range_end": end, "count_only": True, "limit": 2})
    assert set(out) == {"header", "count"} and out["count"] == "5"

    out = ok(client, "/v3/kv/range", {"key": b64(prefix), "range_end": end, "keys_only": True,
                                      "sort_order": "DESCEND", "sort_target": "KEY", "limit": 2})  # fmt: skip
    assert [unb64(kv["key"]) for kv in out["kvs"]] == [prefix + b"e", prefix + b"d"]
    assert all("value" not in kv for kv in out["kvs"])

    out = ok(client, "/v3/kv/range", {"key": b64(prefix), "range_end": end, "min_create_revision": revs["c"]})
    assert [unb64(kv["key"]) for kv in out["kvs"]] == [prefix + n for n in (b"c", b"d", b"e")]
    assert out["count"] == "5"  # count ignores the filters

    out = ok(client, "/v3/kv/range", {"key": b64(prefix + b"d"), "range_end": b64(b"\0"), "keys_only": True})
    keys = [unb64(kv["key"]) for kv in out["kvs"]]
    assert keys[:2] == [prefix + b"d", prefix + b"e"] and keys == sorted(keys)

    out = ok(client, "/v3/kv/range", {"key": b64(prefix + b"c"), "range_end": b64(prefix + b"a")})
    assert set(out) == {"header"}  # range_end <= key: empty, not an error

    out = ok(client, "/v3/kv/range", {"key": b64(prefix), "range_end": end, "revision": revs["b"]})
    assert [unb64(kv["key"]) for kv in out["kvs"]] == [prefix + b"a", prefix + b"b"]
    assert int(out["header"]["revision"]) >= revs["e"]  # the header holds the current revision


def test_deleterange(client: httpx.Client, ns: Ns) -> None:
    prefix = ns("d/")
    before = revision(client)
    out = ok(client, "/v3/kv/deleterange", {"key": b64(prefix + b"missing")})
    assert set(out) == {"header"} and int(out["header"]["revision"]) == before

    first = put(client, prefix + b"a", b"1")
    put(client, prefix + b"b", b"2")
    last = put(client, prefix + b"c", b"3")
    out = ok(client, "/v3/kv/deleterange", {"key": b64(prefix + b"a"), "prev_kv": True})
    assert int(out["header"]["revision"]) == last + 1
    assert out["deleted"] == "1"
    assert out["prev_kvs"] == [{"key": b64(prefix + b"a"), "create_revision": str(first),
                                "mod_revision": str(first), "version": "1", "value": b64("1")}]  # fmt: skip
    out = ok(client, "/v3/kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
    assert set(out) == {"header", "deleted"} and out["deleted"] == "2"
    assert int(out["header"]["revision"]) == last + 2  # two keys, one revision
    assert "kvs" not in ok(client, "/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})


def test_txn_branches_share_one_revision(client: httpx.Client, ns: Ns) -> None:
    foo, t1, t2 = ns("foo"), ns("t1"), ns("t2")
    put(client, foo, b"baz")
    cur = revision(client)
    out = ok(client, "/v3/kv/txn", {
        "compare": [{"key": b64(foo), "result": "EQUAL", "target": "VALUE", "value": b64("baz")}],
        "success": [
            {"request_range": {"key": b64(t1)}},
            {"request_put": {"key": b64(t1), "value": b64("x")}},
            {"request_put": {"key": b64(t2), "value": b64("y"), "prev_kv": True}},
            {"request_range": {"key": b64(t1)}},
            {"request_delete_range": {"key": b64(ns("nothing"))}},
        ],
        "failure": [],
    })  # fmt: skip
    assert out["succeeded"] is True
    assert int(out["header"]["revision"]) == cur + 1
    responses = out["responses"]
    assert responses[0] == {"response_range": {"header": {"revision": str(cur)}}}
    assert responses[1] == {"response_put": {"header": {"revision": str(cur + 1)}}}
    assert responses[2] == {"response_put": {"header": {"revision": str(cur + 1)}}}
    assert responses[3]["response_range"]["kvs"][0]["mod_revision"] == str(cur + 1)
    assert responses[4] == {"response_delete_range": {"header": {"revision": str(cur + 1)}}}
    assert get_kv(client, t1)["mod_revision"] == get_kv(client, t2)["mod_revision"] == str(cur + 1)


def test_txn_failure_branch_nested_and_read_only(client: httpx.Client, ns: Ns) -> None:
    key = ns("k")
    put(client, key, b"v")
    cur = revision(client)
    out = ok(client, "/v3/kv/txn", {
        "compare": [{"key": b64(ns("missing")), "result": "NOT_EQUAL", "target": "VALUE", "value": b64("z")}],
        "success": [{"request_put": {"key": b64(key), "value": b64("never")}}],
        "failure": [{"request_range": {"key": b64(key), "count_only": True}}],
    })  # fmt: skip
    assert "succeeded" not in out  # false is left out
    assert out["responses"] == [{"response_range": {"header": {"revision": str(cur)}, "count": "1"}}]
    assert int(out["header"]["revision"]) == cur  # read-only: no new revision

    out = ok(client, "/v3/kv/txn", {
        "compare": [{"key": b64(ns("missing")), "target": "VERSION", "version": "0"}],
        "success": [{"request_txn": {
            "compare": [{"key": b64(key), "result": "GREATER", "target": "CREATE", "create_revision": 0}],
            "success": [{"request_put": {"key": b64(ns("nested")), "value": b64("n")}}],
        }}],
    })  # fmt: skip
    assert out["succeeded"] is True
    assert out["responses"] == [{"response_txn": {"header": {}, "succeeded": True, "responses": [
        {"response_put": {"header": {"revision": str(cur + 1)}}}]}}]  # fmt: skip
    assert get_kv(client, ns("nested"))["mod_revision"] == str(cur + 1)

    out = ok(client, "/v3/kv/txn", {})
    assert set(out) == {"header", "succeeded"} and out["succeeded"] is True  # no compares: success


def test_compaction(fresh_client: httpx.Client) -> None:
    client = fresh_client
    revs = [put(client, b"c/" + bytes([i]), b"v") for i in range(4)]
    assert revs == [2, 3, 4, 5]
    out = ok(client, "/v3/kv/compaction", {"revision": "3"})
    assert set(out) == {"header"} and out["header"]["revision"] == "5"  # compaction keeps the revision
    assert ok(client, "/v3/kv/range", {"key": b64(b"c/\x00"), "revision": 3})["kvs"][0]["mod_revision"] == "2"
    assert get_kv(client, b"c/\x00") is not None  # older than the compaction, still the newest version
    assert revision(client) == 5


def test_maintenance_status(client: httpx.Client) -> None:
    out = ok(client, "/v3/maintenance/status", {})
    assert out["version"] == "3.4.23"
    assert out["leader"] == out["header"]["member_id"]
    assert out["raftTerm"] == out["header"]["raft_term"]
    for name in ("dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex"):
        assert isinstance(out[name], str) and int(out[name]) > 0, name
    assert int(out["raftAppliedIndex"]) <= int(out["raftIndex"])
    assert "errors" not in out and "isLearner" not in out  # zero values are left out


def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"  # as etcd's (unlabelled) reply
    assert response.json() == {"health": "true"}


def test_health_is_get_only(client: httpx.Client) -> None:
    response = client.post("/health")
    assert (response.status_code, response.text, response.headers["allow"]) == (405, "Method Not Allowed\n", "GET")


def test_version(client: httpx.Client) -> None:
    response = client.get("/version")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["etcdserver"] == "3.4.23"
    assert body["etcdcluster"] == "3.4.0"


def test_v3beta_paths_are_rewritten(client: httpx.Client, ns: Ns) -> None:
    rev = int(ok(client, "/v3beta/kv/put", {"key": b64(ns("k")), "value": b64("x")})["header"]["revision"])
    assert ok(client, "/v3beta/kv/range", {"key": b64(ns("k"))})["kvs"][0]["mod_revision"] == str(rev)
    assert "version" in ok(client, "/v3beta/maintenance/status", {})
    assert client.get("/v3beta/kv/range").status_code == 405


def test_v3alpha_is_not_served(client: httpx.Client) -> None:
    assert client.post("/v3alpha/kv/range", content=b'{"key":"Zm9v"}').status_code == 404


@pytest.mark.parametrize(
    "path", ["/v3/kv/nope", "/v3/kv", "/v3/kv/range/", "/v3/nope/range", "/v3beta/kv/nope"]
)
def test_unknown_v3_path_is_404_text(client: httpx.Client, path: str) -> None:
    response = client.post(path, content=b"{}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert response.content == b"Not Found\n"
    for name, value in CORS.items():
        assert response.headers[name] == value


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("path", POST_ROUTES)
def test_other_method_on_a_post_route_is_405(client: httpx.Client, path: str, method: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("text/plain")
    assert response.content == b"Method Not Allowed\n"
    for name, value in CORS.items():
        assert response.headers[name] == value


@pytest.mark.parametrize(
    "path", [*POST_ROUTES, "/v3/kv/nope", "/v3beta/kv/range", "/health", "/version", "/"]
)
def test_options_is_200_with_an_empty_body(client: httpx.Client, path: str) -> None:
    response = client.options(path)
    assert response.status_code == 200
    assert response.content == b""
    for name, value in CORS.items():
        assert response.headers[name] == value


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v3/kv/put", {"key": b64("cors"), "value": b64("x")}),
        ("/v3/kv/range", {"key": b64("cors")}),
        ("/v3/kv/range", {}),  # an error
        ("/v3/kv/deleterange", {"key": b64("cors-missing")}),
        ("/v3/kv/txn", {}),
        ("/v3/maintenance/status", {}),
    ],
)
def test_cors_headers_on_unary_answers(client: httpx.Client, path: str, body: Json) -> None:
    response = client.post(path, json=body)
    assert response.status_code in (200, 400)
    for name, value in CORS.items():
        assert response.headers[name] == value


@pytest.mark.parametrize("path", ["/health", "/version"])
def test_cors_headers_outside_v3(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    for name, value in CORS.items():
        assert response.headers[name] == value


# -- encoding ---------------------------------------------------------------------------------------


def test_int64_fields_are_strings_and_numbers_are_accepted(client: httpx.Client, ns: Ns) -> None:
    prefix = ns("n/")
    first = put(client, prefix + b"a", lease=0)  # a bare number on input
    put(client, prefix + b"b")
    out = ok(client, "/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix)), "limit": 1,
                                      "revision": first, "min_mod_revision": 1,
                                      "max_create_revision": 1 << 62})  # fmt: skip
    assert out["count"] == "1" and isinstance(out["count"], str)
    (kv,) = out["kvs"]
    for name in ("create_revision", "mod_revision", "version"):
        assert isinstance(kv[name], str) and kv[name].isdigit()
    assert kv["mod_revision"] == str(first)
    assert ok(client, "/v3/kv/range", {"key": b64(prefix + b"b"), "limit": "-1"})["count"] == "1"


def test_zero_fields_are_left_out(client: httpx.Client, ns: Ns) -> None:
    key = ns("k")
    assert set(get(client, ns("missing"))) == {"header"}  # no kvs, no count, no more
    assert set(ok(client, "/v3/kv/put", {"key": b64(key)})) == {"header"}  # empty value
    kv = get_kv(client, key)
    assert kv is not None and "value" not in kv and "lease" not in kv
    assert set(ok(client, "/v3/kv/deleterange", {"key": b64(ns("missing"))})) == {"header"}
    out = ok(client, "/v3/kv/txn", {"compare": [{"key": b64(key), "target": "VERSION", "version": "99"}]})
    assert set(out) == {"header"}  # failed and no ops: neither succeeded nor responses
    out = ok(client, "/v3/kv/range", {"key": b64(key), "count_only": True, "limit": 1})
    assert set(out) == {"header", "count"}


def test_lower_camel_aliases_are_accepted(client: httpx.Client, ns: Ns) -> None:
    prefix = ns("c/")
    for name in "ab":
        put(client, prefix + name.encode(), name.encode())
    end = b64(prefix_end(prefix))
    out = ok(client, "/v3/kv/range", {"key": b64(prefix), "rangeEnd": end, "countOnly": True})
    assert out["count"] == "2"
    out = ok(client, "/v3/kv/range", {"key": b64(prefix), "rangeEnd": end, "keysOnly": True,
                                      "sortOrder": "DESCEND", "sortTarget": "KEY"})  # fmt: skip
    assert [unb64(kv["key"]) for kv in out["kvs"]] == [prefix + b"b", prefix + b"a"]
    assert all("value" not in kv for kv in out["kvs"])
    out = ok(client, "/v3/kv/put", {"key": b64(prefix + b"a"), "value": b64("a2"), "prevKv": True})
    assert unb64(out["prev_kv"]["value"]) == b"a"
    ok(client, "/v3/kv/put", {"key": b64(prefix + b"a"), "ignoreValue": True})
    assert unb64(get_kv(client, prefix + b"a")["value"]) == b"a2"
    out = ok(client, "/v3/kv/txn", {
        "compare": [{"key": b64(prefix), "rangeEnd": end, "target": "CREATE", "result": "GREATER",
                     "createRevision": "0"}],
        "success": [{"requestPut": {"key": b64(prefix + b"c"), "value": b64("c")}},
                    {"requestRange": {"key": b64(prefix), "rangeEnd": end, "countOnly": True}}],
    })  # fmt: skip
    assert out["succeeded"] is True and out["responses"][1]["response_range"]["count"] == "3"
    out = ok(client, "/v3/kv/deleterange", {"key": b64(prefix), "rangeEnd": end, "prevKv": True})
    assert out["deleted"] == "3" and len(out["prev_kvs"]) == 3


def test_unknown_fields_are_ignored(client: httpx.Client, ns: Ns) -> None:
    key = ns("k")
    ok(client, "/v3/kv/put", {"key": b64(key), "value": b64("x"), "bogus": 1, "ttl": {"deep": [1, "two"]}})
    assert ok(client, "/v3/kv/range", {"key": b64(key), "bogus": 1})["count"] == "1"
    out = ok(client, "/v3/kv/txn", {
        "bogus": [1],
        "compare": [{"key": b64(key), "target": "VALUE", "value": b64("x"), "bogus": True}],
        "success": [{"request_range": {"key": b64(key), "bogus": "x"}, "bogus": None}],
    })  # fmt: skip
    assert out["succeeded"] is True
    assert "version" in ok(client, "/v3/maintenance/status", {"bogus": 1})


@pytest.mark.parametrize("body", [b"", b"null", b"{}", b"  \n "])
def test_empty_body_is_an_empty_request(client: httpx.Client, body: bytes) -> None:
    before = revision(client)
    out = ok(client, "/v3/kv/txn", content=body)
    assert out["succeeded"] is True and int(out["header"]["revision"]) == before
    assert "version" in ok(client, "/v3/maintenance/status", content=body)
    assert_rejected(client, "/v3/kv/range", content=body, status=400, code=3, message=KEY_NOT_PROVIDED)


def test_only_the_first_json_value_is_read(client: httpx.Client, ns: Ns) -> None:
    key = ns("k")
    body = json.dumps({"key": b64(key), "value": b64("first")}).encode()
    ok(client, "/v3/kv/put", content=body + b" trailing garbage")
    assert unb64(get_kv(client, key)["value"]) == b"first"
    rev = revision(client)
    second = json.dumps({"key": b64(ns("second")), "value": b64("x")}).encode()
    ok(client, "/v3/kv/put", content=body + second)
    assert revision(client) == rev + 1 and get_kv(client, ns("second")) is None
    out = ok(client, "/v3/kv/range", content=b'{"key":"%s","count_only":true} trailing {' % b64(key).encode())
    assert out["count"] == "1"


def test_duplicate_json_field_last_one_wins(client: httpx.Client, ns: Ns) -> None:
    put(client, ns("b"), b"b")
    body = b'{"key":"%s","key":"%s"}' % (b64(ns("a")).encode(), b64(ns("b")).encode())
    assert [unb64(kv["key"]) for kv in ok(client, "/v3/kv/range", content=body)["kvs"]] == [ns("b")]


@pytest.mark.parametrize("body", [b"[]", b'[{"key":"Zm9v"}]', b'"Zm9v"', b"5", b"true"])
@pytest.mark.parametrize("path", KV_ROUTES)
def test_top_level_non_object_is_400(client: httpx.Client, path: str, body: bytes) -> None:
    assert_rejected(client, path, content=body, status=400, code=3)


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b'{"key":', b"{", b'{"key" "Zm9v"}', b"not json", b'{"key":"Zm9v",}', b"\xff\xfe"]
)
@pytest.mark.parametrize("path", KV_ROUTES)
def test_malformed_json_is_400(client: httpx.Client, path: str, body: bytes) -> None:
    assert_rejected(client, path, content=body, status=400, code=3)


def test_truncated_json_says_unexpected_eof(client: httpx.Client) -> None:
    assert_rejected(client, "/v3/kv/range", content=b'{"key":', status=400, code=3, message="unexpected EOF")


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v3/kv/range", {"key": "a2V5L2E"}, "illegal base64 data at input byte 4"),
        ("/v3/kv/put", {"key": "a2V5L2E", "value": "eA=="}, "illegal base64 data at input byte 4"),
        ("/v3/kv/put", {"key": "eA==", "value": "a2V5L2E"}, "illegal base64 data at input byte 4"),
        ("/v3/kv/range", {"key": "a2V5-2E="}, "illegal base64 data at input byte 4"),  # URL-safe alphabet
        ("/v3/kv/deleterange", {"key": "_w=="}, "illegal base64 data at input byte 0"),
        ("/v3/kv/txn", {"success": [{"request_put": {"key": "a2V5L2E", "value": "eA=="}}]},
         "illegal base64 data at input byte 4"),
        ("/v3/kv/range", {"key": "eA==", "limit": 1.5},
         "json: cannot unmarshal number 1.5 into Go value of type int64"),
        ("/v3/kv/range", {"key": "eA==", "keys_only": "true"},
         "json: cannot unmarshal string into Go value of type bool"),
        ("/v3/kv/range", {"key": "eA==", "sort_order": "descend"},
         'unknown value "descend" for enum etcdserverpb.RangeRequest_SortOrder'),
    ],
)  # fmt: skip
def test_bad_field_values_are_400_with_go_messages(
    client: httpx.Client, path: str, body: Json, message: str
) -> None:
    assert_rejected(client, path, body, status=400, code=3, message=message)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v3/kv/range", {}),
        ("/v3/kv/range", {"key": "", "range_end": "AA=="}),
        ("/v3/kv/put", {"value": "eA=="}),
        ("/v3/kv/deleterange", {"range_end": "AA=="}),
        ("/v3/kv/txn", {"compare": [{"target": "VERSION", "version": 0}]}),
        ("/v3/kv/txn", {"success": [{"request_put": {"value": "eA=="}}]}),
        ("/v3/kv/txn", {"failure": [{"request_range": {}}]}),
        ("/v3/kv/txn", {"success": [{"request_txn": {"success": [{"request_delete_range": {}}]}}]}),
    ],
)
def test_empty_key_is_rejected(client: httpx.Client, path: str, body: Json) -> None:
    assert_rejected(client, path, body, status=400, code=3, message=KEY_NOT_PROVIDED)


def test_future_and_compacted_revisions(fresh_client: httpx.Client) -> None:
    client = fresh_client
    for i in range(3):
        put(client, b"r/" + bytes([i]))
    cur = revision(client)
    assert cur == 4
    key = b64(b"r/\x00")
    for path, body in [
        ("/v3/kv/range", {"key": key, "revision": cur + 1}),
        ("/v3/kv/range", {"key": key, "revision": "1000000"}),
        ("/v3/kv/compaction", {"revision": cur + 1}),
        ("/v3/kv/txn", {"success": [{"request_range": {"key": key, "revision": cur + 1}}]}),
        ("/v3/kv/txn", {"success": [{"request_put": {"key": key}},
                                    {"request_range": {"key": key, "revision": cur + 1}}]}),
    ]:  # fmt: skip
        assert_rejected(client, path, body, status=400, code=11, message=FUTURE_REV)

    ok(client, "/v3/kv/compaction", {"revision": 3})
    for path, body in [
        ("/v3/kv/compaction", {"revision": 3}),  # the same revision twice
        ("/v3/kv/compaction", {"revision": 2}),
        ("/v3/kv/compaction", {}),  # 0, once something has been compacted
        ("/v3/kv/compaction", {"revision": "3", "physical": True}),
        ("/v3/kv/range", {"key": key, "revision": 2}),
        ("/v3/kv/txn", {"success": [{"request_range": {"key": key, "revision": 2}}]}),
        ("/v3/kv/txn", {"success": [{"request_range": {"key": key, "revision": "-1"}}]}),  # etcd's txn quirk
        ("/v3/kv/txn", {"success": [{"request_put": {"key": key}},
                                    {"request_range": {"key": key, "revision": 1}}]}),
    ]:  # fmt: skip
        assert_rejected(client, path, body, status=400, code=11, message=COMPACTED)
    assert ok(client, "/v3/kv/range", {"key": key, "revision": 3})["kvs"][0]["mod_revision"] == "2"
    assert ok(client, "/v3/kv/range", {"key": key, "revision": -1})["count"] == "1"  # standalone: latest
    assert revision(client) == cur


@pytest.mark.parametrize("branch", ["compare", "success", "failure"])
def test_too_many_ops(small_client: httpx.Client, ns: Ns, branch: str) -> None:
    key = b64(ns("k"))
    item: Json = {"key": key} if branch == "compare" else {"request_range": {"key": key}}
    body = {branch: [item] * 5}
    assert_rejected(small_client, "/v3/kv/txn", body, status=400, code=3, message=TOO_MANY_OPS)
    ok(small_client, "/v3/kv/txn", {branch: [item] * 4})  # the limit itself is fine


def test_too_many_ops_counts_nested_txns_against_what_is_left(small_client: httpx.Client, ns: Ns) -> None:
    read = {"request_range": {"key": b64(ns("k"))}}

    def body(inner: int) -> Json:
        return {"success": [read, {"request_txn": {"success": [read] * inner}}]}

    assert_rejected(small_client, "/v3/kv/txn", body(3), status=400, code=3, message=TOO_MANY_OPS)
    ok(small_client, "/v3/kv/txn", body(2))


@pytest.mark.parametrize(
    "ops",
    [
        [{"request_put": {"key": "YQ==", "value": "MQ=="}}, {"request_put": {"key": "YQ=="}}],
        [{"request_put": {"key": "YQ==", "value": "MQ=="}}, {"request_delete_range": {"key": "YQ=="}}],
        [{"request_delete_range": {"key": "YQ==", "range_end": "Yg=="}}, {"request_put": {"key": "YWFh"}}],
        [{"request_put": {"key": "YQ=="}}, {"request_txn": {"success": [{"request_put": {"key": "YQ=="}}]}}],
    ],
)
def test_duplicate_key_in_txn(client: httpx.Client, ops: Json) -> None:
    for branch in ("success", "failure"):
        assert_rejected(client, "/v3/kv/txn", {branch: ops}, status=400, code=3, message=DUPLICATE_KEY)


def test_same_key_in_different_branches_is_not_a_duplicate(client: httpx.Client, ns: Ns) -> None:
    key = b64(ns("k"))
    write = {"request_put": {"key": key, "value": b64("x")}}
    out = ok(client, "/v3/kv/txn", {"success": [write, {"request_delete_range": {"key": b64(ns("j"))}},
                                                {"request_delete_range": {"key": b64(ns("j"))}}],
                                    "failure": [write]})  # fmt: skip
    assert out["succeeded"] is True


def test_unknown_lease(client: httpx.Client, ns: Ns) -> None:
    assert_rejected(client, "/v3/kv/put", {"key": b64(ns("k")), "value": "eA==", "lease": "12345"},
                    status=404, code=5, message=LEASE_NOT_FOUND)  # fmt: skip
    assert get_kv(client, ns("k")) is None


@pytest.mark.parametrize("branch", ["success", "failure"])
def test_txn_with_a_bad_lease_applies_nothing(client: httpx.Client, ns: Ns, branch: str) -> None:
    first, second = ns("first"), ns("second")
    version = "0" if branch == "success" else "1"  # the missing key's version is 0
    compare = [{"key": b64(ns("missing")), "target": "VERSION", "version": version}]
    ops = [
        {"request_put": {"key": b64(first), "value": b64("x")}},
        {"request_delete_range": {"key": b64(ns("other"))}},
        {"request_put": {"key": b64(second), "value": b64("y"), "lease": "999"}},
    ]
    assert_rejected(client, "/v3/kv/txn", {"compare": compare, branch: ops},
                    status=404, code=5, message=LEASE_NOT_FOUND)  # fmt: skip
    assert get_kv(client, first) is None and get_kv(client, second) is None


def test_txn_with_a_bad_lease_in_the_branch_not_taken_succeeds(client: httpx.Client, ns: Ns) -> None:
    out = ok(client, "/v3/kv/txn", {
        "success": [{"request_put": {"key": b64(ns("k")), "value": b64("x")}}],
        "failure": [{"request_put": {"key": b64(ns("j")), "value": b64("y"), "lease": "999"}}],
    })  # fmt: skip
    assert out["succeeded"] is True and get_kv(client, ns("k")) is not None


def test_ignore_value_and_ignore_lease_errors(client: httpx.Client, ns: Ns) -> None:
    missing, present = ns("missing"), ns("present")
    put(client, present)
    for flag in ("ignore_value", "ignore_lease"):
        assert_rejected(client, "/v3/kv/put", {"key": b64(missing), flag: True},
                        status=400, code=3, message=KEY_NOT_FOUND)  # fmt: skip
    assert_rejected(client, "/v3/kv/put", {"key": b64(present), "value": b64("x"), "ignore_value": True},
                    status=400, code=3, message="etcdserver: value is provided")  # fmt: skip
    assert_rejected(client, "/v3/kv/put", {"key": b64(present), "lease": "5", "ignore_lease": True},
                    status=400, code=3, message="etcdserver: lease is provided")  # fmt: skip
    assert_rejected(client, "/v3/kv/txn", {"success": [
        {"request_put": {"key": b64(ns("first")), "value": b64("x")}},
        {"request_put": {"key": b64(missing), "ignore_value": True}},
    ]}, status=400, code=3, message=KEY_NOT_FOUND)  # fmt: skip
    assert get_kv(client, ns("first")) is None and get_kv(client, missing) is None


@pytest.mark.parametrize("op", [{}, {"request_put": None}, {"bogus": {"key": "eA=="}}])
def test_empty_request_op_is_key_not_found(client: httpx.Client, ns: Ns, op: Json) -> None:
    body = {"success": [{"request_put": {"key": b64(ns("k")), "value": b64("x")}}, op]}
    assert_rejected(client, "/v3/kv/txn", body, status=400, code=3, message=KEY_NOT_FOUND)
    assert get_kv(client, ns("k")) is None


def test_request_too_large(small_client: httpx.Client, ns: Ns) -> None:
    client = small_client
    put(client, ns("fits"), b"x" * 1000)
    big = b64(b"x" * 3000)
    assert_rejected(client, "/v3/kv/put", {"key": b64(ns("k")), "value": big},
                    status=400, code=3, message=TOO_LARGE)  # fmt: skip
    assert_rejected(client, "/v3/kv/txn", {"success": [{"request_put": {"key": b64(ns("k")), "value": big}}]},
                    status=400, code=3, message=TOO_LARGE)  # fmt: skip
    assert get_kv(client, ns("k")) is None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v3/kv/put", {"key": b64("big"), "value": b64(b"x" * 600_000)}),
        ("/v3/kv/range", {"key": b64(b"x" * 600_000)}),
        ("/v3/kv/txn", {"success": [{"request_put": {"key": b64("big"), "value": b64(b"x" * 600_000)}}]}),
    ],
)
def test_over_the_grpc_receive_limit_is_429(small_client: httpx.Client, path: str, body: Json) -> None:
    message = assert_rejected(small_client, path, body, status=429, code=8)
    match = GRPC_TOO_LARGE.match(message)
    assert match is not None, message
    assert int(match[2]) == SMALL_RECEIVE_LIMIT and int(match[1]) > SMALL_RECEIVE_LIMIT


def test_body_far_over_the_limit_is_429(small_client: httpx.Client) -> None:
    body = {"key": b64("huge"), "value": b64(b"x" * 1_300_000)}
    message = assert_rejected(small_client, "/v3/kv/put", body, status=429, code=8)
    assert GRPC_TOO_LARGE.match(message), message


def test_body_far_over_the_limit_names_the_grpc_limit(small_client: httpx.Client) -> None:
    body = {"key": b64("huge"), "value": b64(b"x" * 1_300_000)}
    message = assert_rejected(small_client, "/v3/kv/put", body, status=429, code=8)
    match = GRPC_TOO_LARGE.match(message)
    assert match is not None and int(match[2]) == SMALL_RECEIVE_LIMIT, message


@pytest.mark.parametrize("byte", [0x00, 0xFF])
def test_binary_value_under_the_limit_is_accepted(small_client: httpx.Client, ns: Ns, byte: int) -> None:
    value = bytes([byte]) * 1200
    rev = put(small_client, ns("bin"), value)
    assert get_kv(small_client, ns("bin")) == {"key": b64(ns("bin")), "create_revision": str(rev),
                                               "mod_revision": str(rev), "version": "1", "value": b64(value)}


@pytest.mark.parametrize(
    "body", [b"[" * 100_000, b'{"key":"Zm9v","bogus":' + b"[" * 100_000], ids=["top-level", "unknown-field"]
)
def test_deeply_nested_json_is_a_decode_error(client: httpx.Client, body: bytes) -> None:
    assert_rejected(client, "/v3/kv/range", content=body, status=400, code=3)


@pytest.mark.parametrize("depth", [90, 128])
def test_nested_txn_within_the_op_limit(server: ServerProcess, ns: Ns, depth: int) -> None:
    with httpx.Client(base_url=server.url, timeout=15.0) as client:  # no 5xx hook: check what a 500 left
        key = ns("deep")
        before = revision(client)
        response = client.post("/v3/kv/txn", json=nested_txn(depth, {"request_put": {"key": b64(key)}}))
        assert response.status_code == 200 or revision(client) == before, "an error left its write applied"
        assert response.status_code == 200, response.text
        assert int(response.json()["header"]["revision"]) == before + 1
        assert get_kv(client, key)["mod_revision"] == str(before + 1)


def test_nested_txn_well_within_the_encoder_limit(client: httpx.Client, ns: Ns) -> None:
    before = revision(client)
    out = ok(client, "/v3/kv/txn", nested_txn(40, {"request_put": {"key": b64(ns("deep"))}}))
    assert out["succeeded"] is True and int(out["header"]["revision"]) == before + 1
    inner = out
    for _ in range(39):
        (op,) = inner["responses"]
        inner = op["response_txn"]
        assert inner["header"] == {}
    assert inner["responses"] == [{"response_put": {"header": {"revision": str(before + 1)}}}]


# -- no request, however odd, gets a 500 or half-applies ---------------------------------------------

_FIELDS = [
    "key", "range_end", "rangeEnd", "limit", "revision", "sort_order", "sort_target", "keys_only",
    "count_only", "min_mod_revision", "max_create_revision", "value", "lease", "prev_kv", "ignore_value",
    "ignore_lease", "physical", "compare", "success", "failure", "result", "target", "version", "create_revision",
    "mod_revision", "request_range", "request_put", "request_delete_range", "request_txn", "requestPut",
]  # fmt: skip
_SCALARS = st.one_of(
    st.sampled_from(["Zm9v", "AA==", "", "YQ==", "Yg==", "a2V5L2E", "-_8=", "=", "Zm9v\u00e9", "\u0000"]),
    st.sampled_from(["EQUAL", "GREATER", "NOT_EQUAL", "VALUE", "MOD", "LEASE", "DESCEND", "KEY", "equal"]),
    st.integers(-(2**70), 2**70),
    st.sampled_from(["1", "-1", "0", "2", "1.5", "1e3", " 1", "9223372036854775808"]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_FIELDS), inner, max_size=5)
    ),
    max_leaves=25,
)


def test_fuzzed_requests_never_500_and_errors_change_nothing(fresh_client: httpx.Client) -> None:
    """Random bodies built from real field names and odd values: a 200, or an etcd error that changed
    nothing. (`fresh_client` fails on any 5xx; the compactions fuzzing sends stay on its own server.)"""
    client = fresh_client
    put(client, b"foo")  # something for compares and ranges to find

    @settings(max_examples=250, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(st.sampled_from(KV_ROUTES), st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=6))
    def check(path: str, body: Json) -> None:
        before = revision(client)
        response = client.post(path, content=json.dumps(body))
        if response.status_code == 200:
            assert response.headers["content-type"] == "application/json"
            assert isinstance(response.json(), dict)
            return
        assert_error(response, response.status_code, response.json()["code"])
        assert revision(client) == before, (path, body, response.text)

    check()


def test_member_list_and_leadership_on_a_single_member(client: httpx.Client) -> None:
    listed = client.post("/v3/cluster/member/list", json={}).json()
    (member,) = listed["members"]
    assert member["ID"] == listed["header"]["member_id"] and "revision" not in listed["header"]
    assert member["clientURLs"] and member["peerURLs"]
    moved = client.post("/v3/maintenance/transfer-leadership", json={"targetID": member["ID"]})
    assert (moved.status_code, moved.text) == (200, "{}")
    refused = client.post("/v3/maintenance/transfer-leadership", json={"targetID": "5"})
    assert refused.status_code == 400
    text = "etcdserver: bad leader transferee"
    assert refused.json() == {"error": text, "message": text, "code": 9}
