"""Failover and retry rules, against in-process transports that fail on purpose (no sockets)."""

from __future__ import annotations

import httpx
import orjson
import pytest
from corral.client import Client, RequestTimeout, RetryPolicy, TransportError, Unavailable
from corral.client import __all__ as exported
from corral.client import txn as t

A, B = "http://a:2379", "http://b:2379"
FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.002, deadline=1.0)
RANGE_OK = {"header": {"revision": "7"}, "kvs": [{"key": "aw==", "value": "dg==", "mod_revision": "7"}], "count": "1"}


def _client(fail: dict[str, type[Exception] | int], seen: list[str]) -> Client:
    """Endpoints A and B; `fail` maps a host to the exception it raises or the HTTP error code it answers."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host} {request.url.path}")
        failure = fail.get(request.url.host)
        if isinstance(failure, int):
            body = {"error": "etcdserver: no leader", "message": "etcdserver: no leader", "code": failure}
            return httpx.Response(503, content=orjson.dumps(body))
        if failure is not None:
            raise failure("injected", request=request)
        if request.url.path == "/v3/kv/range":
            return httpx.Response(200, content=orjson.dumps(RANGE_OK))
        return httpx.Response(200, content=b'{"header":{"revision":"8"}}')

    return Client([A, B], retry=FAST, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ReadError, httpx.ReadTimeout, 14])
def test_reads_fail_over_on_any_failure(failure: type[Exception] | int) -> None:
    seen: list[str] = []
    client = _client({"a": failure}, seen)
    assert client.get("k").value == b"v"
    assert seen == ["a /v3/kv/range", "b /v3/kv/range"]
    assert client.get("k").count == 1 and seen[-1] == "b /v3/kv/range"  # B stays current


def test_writes_retry_only_when_the_request_never_left() -> None:
    seen: list[str] = []
    assert _client({"a": httpx.ConnectError}, seen).put("k", "v").revision == 8
    assert seen == ["a /v3/kv/put", "b /v3/kv/put"]

    for failure, error in [(httpx.ReadTimeout, RequestTimeout), (httpx.ReadError, TransportError)]:
        seen = []
        with pytest.raises(error):
            _client({"a": failure}, seen).put("k", "v")
        assert seen == ["a /v3/kv/put"]  # it may have been applied: never sent twice

    seen = []
    with pytest.raises(Unavailable):
        _client({"a": 14}, seen).put("k", "v")
    assert seen == ["a /v3/kv/put"]


def test_read_only_txn_is_retried_and_writing_txn_is_not() -> None:
    seen: list[str] = []
    _client({"a": httpx.ReadError}, seen).txn([], [t.get("k")])
    assert len(seen) == 2
    seen = []
    with pytest.raises(TransportError):
        _client({"a": httpx.ReadError}, seen).txn([], [t.put("k", "v")])
    assert len(seen) == 1


def test_gives_up_at_the_deadline() -> None:
    seen: list[str] = []
    client = _client({"a": httpx.ConnectError, "b": httpx.ConnectError}, seen)
    with pytest.raises(TransportError):
        client.get("k")
    assert 2 < len(seen) < 2000


def test_exported_names_are_the_public_surface() -> None:
    import corral.client as package

    public = {name for name in vars(package) if not name.startswith("_")} - {"annotations"}
    assert set(exported) == public - {"recipes", "ctl", "watch"}  # submodules


def test_status_of_a_dead_endpoint_is_a_transport_error() -> None:
    seen: list[str] = []
    with pytest.raises(TransportError):
        _client({"a": httpx.ConnectError}, seen).status()


def test_compare_over_every_key() -> None:
    assert t.version("", prefix=True).__gt__(0).to_json()["key"] == "AA=="  # b"\0": etcd refuses an empty key
