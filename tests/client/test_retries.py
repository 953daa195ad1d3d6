"""Failover and retry rules, against in-process transports that fail on purpose (no sockets)."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from corral.client import AsyncClient, Client, RequestTimeout, RetryPolicy, TransportError, Unavailable
from corral.client import __all__ as exported
from corral.client import txn as t
from corral.client._endpoints import NOT_APPLIED

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


def _answering(answers: list[tuple[int, dict[str, object]]], seen: list[str]) -> httpx.MockTransport:
    """A transport that gives the listed answers in turn, then succeeds (a put's answer)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host} {request.url.path}")
        if len(seen) <= len(answers):
            status, body = answers[len(seen) - 1]
            return httpx.Response(status, content=orjson.dumps(body))
        return httpx.Response(200, content=b'{"header":{"revision":"8"}}')

    return httpx.MockTransport(handler)


def _unavailable(message: str) -> tuple[int, dict[str, object]]:
    return 503, {"error": message, "message": message, "code": 14}


def test_writes_are_retried_when_the_server_proves_them_not_applied() -> None:
    seen: list[str] = []
    answers = [_unavailable(NOT_APPLIED), _unavailable(NOT_APPLIED)]
    client = Client([A, B], retry=FAST, transport=_answering(answers, seen))
    assert client.put("k", "v").revision == 8
    # The member that said so knows the new leader: the retries stay with it.
    assert seen == ["a /v3/kv/put"] * 3
    seen.clear()
    client = Client([A, B], retry=FAST, transport=_answering([_unavailable(NOT_APPLIED)], seen))
    client.txn([], [t.put("k", "v")])
    assert seen == ["a /v3/kv/txn"] * 2


def test_async_writes_are_retried_when_the_server_proves_them_not_applied() -> None:
    seen: list[str] = []

    async def scenario() -> int:
        transport = _answering([_unavailable(NOT_APPLIED)], seen)
        async with AsyncClient([A, B], retry=FAST, transport=transport) as client:
            return (await client.delete("k")).revision

    assert asyncio.run(scenario()) == 8
    assert seen == ["a /v3/kv/deleterange"] * 2


@pytest.mark.parametrize("message", ["etcdserver: leader changed", "etcdserver: request timed out"])
def test_writes_are_not_retried_on_other_unavailable_answers(message: str) -> None:
    """etcd's `leader changed` is about reads and a timeout leaves the outcome open: the caller decides."""
    seen: list[str] = []
    with pytest.raises(Unavailable) as raised:
        Client([A, B], retry=FAST, transport=_answering([_unavailable(message)], seen)).put("k", "v")
    assert raised.value.message == message
    assert seen == ["a /v3/kv/put"]


def test_a_write_not_applied_again_and_again_gives_up_at_the_deadline() -> None:
    seen: list[str] = []
    policy = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, deadline=0.2)
    client = Client([A], retry=policy, transport=_answering([_unavailable(NOT_APPLIED)] * 10_000, seen))
    with pytest.raises(Unavailable) as raised:
        client.put("k", "v")
    assert raised.value.message == NOT_APPLIED
    assert 2 < len(seen) < 1000


def test_the_retry_rule_matches_the_servers_text() -> None:
    from corral.api.errors import NotAppliedError, error_response

    status, body = error_response(NotAppliedError())
    assert (status, orjson.loads(body)) == (503, {"error": NOT_APPLIED, "message": NOT_APPLIED, "code": 14})
