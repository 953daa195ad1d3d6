"""The operations the fuzzer leaves out, checked against `openapi.yaml` in bounded exchanges.

`test_schemathesis.py` cannot fuzz the streams that stay open until the client disconnects
(`POST /v3/watch`, `GET /v3/watch/sse`, `POST /v3/election/observe`), the snapshot stream whose answer
is several lines (`POST /v3/maintenance/snapshot`), nor the calls that wait for the caller's turn
(`POST /v3/election/campaign`, `POST /v3/lock/lock`): see NOT_FUZZED there. Here each is
driven through the cases its description names, and every answer is checked against the document: a
waiting call with schemathesis' own checks (status, content type, schema, headers), a stream's status
and headers as declared and each of its messages against the per-message schema the operation names
(one `{"result": ...}` line, or one Server-Sent Event's `data`). Every wait has a deadline and every
stream is closed by the client, so a server that never answers fails a test instead of hanging the run.
"""

from __future__ import annotations

import json
import uuid
from base64 import b64encode
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.servers import REPO_ROOT, ServerProcess, corral_process, running
from tests.support.streams import Stream

SPEC = REPO_ROOT / "openapi.yaml"
DOCUMENT: dict[str, Any] = yaml.safe_load(SPEC.read_text())
SCHEMA = schemathesis.openapi.from_path(SPEC)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
WAIT = 10.0  # seconds: the longest any step here may take (each takes milliseconds on a healthy member)
REGISTRY: Registry[Any] = Registry().with_resource("urn:corral:openapi", DRAFT202012.create_resource(DOCUMENT))
CORS = {
    name.lower(): DOCUMENT["components"]["headers"][ref.rsplit("/", 1)[1]]["schema"]["const"]
    for name, ref in (
        ("Access-Control-Allow-Origin", "#/components/headers/AccessControlAllowOrigin"),
        ("Access-Control-Allow-Methods", "#/components/headers/AccessControlAllowMethods"),
        ("Access-Control-Allow-Headers", "#/components/headers/AccessControlAllowHeaders"),
    )
}


def b64(text: str) -> str:
    return b64encode(text.encode()).decode()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def validator(pointer: str) -> Draft202012Validator:
    """A JSON Schema validator for the schema at `pointer` in the document (its $refs resolved there)."""
    return Draft202012Validator({"$ref": f"urn:corral:openapi#{pointer}"}, registry=REGISTRY)


def conforms(pointer: str, instance: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(pointer).iter_errors(instance)]
    assert not errors, f"{json.dumps(instance)[:2000]}\ndoes not match {pointer}:\n" + "\n".join(errors[:10])


def response_schema(path: str, method: str, status: str, media_type: str = "application/json") -> str:
    """The JSON pointer of an operation's response schema (following a $ref to a shared response)."""
    response = DOCUMENT["paths"][path][method]["responses"][status]
    pointer = f"/paths/{path.replace('/', '~1')}/{method}/responses/{status}"
    if "$ref" in response:
        pointer = response["$ref"].removeprefix("#")
    return f"{pointer}/content/{media_type.replace('/', '~1')}/schema"


def line_schema(path: str) -> str:
    return response_schema(path, "post", "200") if path != "/v3/watch/sse" else "/components/schemas/WatchResponse"


@pytest.fixture(scope="module")
def corral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(corral_process(tmp_path_factory.mktemp("unfuzzed") / "data")) as server:
        yield server


@pytest.fixture(scope="module")
def client(corral: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=corral.url, timeout=WAIT) as client:
        yield client


def call(corral: ServerProcess, operation_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """One unary call, checked as the fuzzer checks its calls; its JSON answer."""
    operation = SCHEMA.find_operation_by_id(operation_id)
    case = operation.Case(body=body, media_type="application/json")
    response = case.call(base_url=corral.url, timeout=WAIT)
    case.validate_response(response, checks=CHECKS)
    answer = response.json()
    assert isinstance(answer, dict)
    return answer


def put(client: httpx.Client, key: str, value: str) -> int:
    response = client.post("/v3/kv/put", json={"key": b64(key), "value": b64(value)})
    assert response.status_code == 200, response.text
    return int(response.json()["header"]["revision"])


def assert_stream_head(stream: Stream, path: str) -> None:
    assert stream.status == 200
    media_type = next(iter(DOCUMENT["paths"][path]["post"]["responses"]["200"]["content"]))
    assert stream.headers["content-type"].split(";")[0] == media_type
    for name, value in CORS.items():
        assert stream.headers.get(name) == value, name


def assert_lines_conform(stream: Stream, path: str) -> None:
    for result in stream.snapshot():
        conforms(line_schema(path), {"result": result})
    assert stream.other == [], f"lines that are not results: {stream.other}"


# -- POST /v3/watch ---------------------------------------------------------------------------------


def test_watch_messages_conform_and_the_stream_stays_open(corral: ServerProcess, client: httpx.Client) -> None:
    key = unique("watch")
    before = put(client, key, "v0")
    requests = [
        {"create_request": {"key": b64(key), "prev_kv": True}},  # id 0: no watch_id in its messages
        {"create_request": {"key": b64(key), "start_revision": str(before), "watch_id": "7"}},  # history
        {"create_request": {"key": b64(key), "range_end": b64("a"), "watch_id": "9"}},  # refused: empty range
        {"create_request": {"key": b64(key), "watch_id": "7"}},  # refused: id in use
        {"progress_request": {}},
        {"createRequest": {"key": b64(key + "/"), "rangeEnd": b64(key + "0"), "filters": ["NOPUT", 1]}},
        {"cancel_request": {"watch_id": "12345"}},  # unknown: no answer
    ]
    with Stream.open(corral.url, "/v3/watch", requests, timeout=WAIT) as stream:
        stream.wait_count(7, WAIT)  # 5 created (2 of them refused), the history of id 7, the progress answer
        put(client, key, "v1")
        client.post("/v3/kv/txn", json={"success": [{"request_delete_range": {"key": b64(key)}}]})
        results = stream.wait_for(lambda rs: sum("events" in r for r in rs) >= 5, WAIT, "the events")
        assert_stream_head(stream, "/v3/watch")
        assert_lines_conform(stream, "/v3/watch")
        deletes = [e for r in results for e in r.get("events", []) if e.get("type") == "DELETE"]
        assert deletes and all(set(e["kv"]) == {"key", "mod_revision"} for e in deletes)
        assert any("prev_kv" in e for e in deletes)  # the prev_kv watcher's delete
        assert {r.get("cancel_reason") for r in results if r.get("watch_id") == "-1" and r.get("canceled")} == {
            "mvcc: watcher range is empty",
            "mvcc: duplicate watch ID provided on the WatchStream",
        }
        stream.wait_quiet(0.3, WAIT)
        assert not stream.eof, "the watch stream ended, but it stays open until the client disconnects"

    # cancelling a watcher is answered too
    with Stream.open(corral.url, "/v3/watch", [{"create_request": {"key": b64(key)}}], end=False) as stream:
        stream.wait_count(1, WAIT)
        stream.send({"cancel_request": {"watch_id": "0"}})
        canceled = stream.wait_count(2, WAIT)[1]
        assert canceled.get("canceled") is True and "watch_id" not in canceled
        assert_lines_conform(stream, "/v3/watch")


def test_a_watch_of_compacted_history_is_canceled_with_a_header_without_revision(
    corral: ServerProcess, client: httpx.Client
) -> None:
    key = unique("compacted")
    put(client, key, "1")
    revision = put(client, key, "2")
    assert client.post("/v3/kv/compaction", json={"revision": str(revision)}).status_code == 200
    request = {"create_request": {"key": b64(key), "start_revision": "1"}}
    with Stream.open(corral.url, "/v3/watch", [request], timeout=WAIT) as stream:
        created, canceled = stream.wait_count(2, WAIT)
        assert created["created"] is True
        assert canceled["canceled"] is True and "revision" not in canceled["header"]
        assert int(canceled["compact_revision"]) >= revision
        assert_lines_conform(stream, "/v3/watch")


def test_a_watch_whose_first_request_does_not_decode_is_an_error_object(corral: ServerProcess) -> None:
    with Stream.open(corral.url, "/v3/watch", [{"create_request": {"key": "Zm9"}}], timeout=WAIT) as stream:
        stream.wait_eof(WAIT)
        assert stream.status == 400 and stream.results == []
        [error] = stream.other
        conforms(response_schema("/v3/watch", "post", "400"), error)


# -- GET /v3/watch/sse ------------------------------------------------------------------------------


def sse_events(response: httpx.Response, count: int) -> list[dict[str, str]]:
    """The first `count` events of a Server-Sent Events response (field -> value)."""
    events: list[dict[str, str]] = []
    event: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if event:
                events.append(event)
                event = {}
            if len(events) == count:
                break
            continue
        name, _, value = line.partition(":")
        event[name] = value.removeprefix(" ")
    return events


def test_sse_events_conform(corral: ServerProcess, client: httpx.Client) -> None:
    prefix = unique("sse") + "/"
    first = put(client, prefix + "a", "1")
    put(client, prefix + "a", "2")
    params = {"key": b64(prefix), "prefix": "true", "start_revision": str(first), "prev_kv": "true"}
    with client.stream("GET", "/v3/watch/sse", params=params) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        created, history = sse_events(response, 2)
    assert "id" not in created
    for event in (created, history):
        conforms(line_schema("/v3/watch/sse"), json.loads(event["data"]))
    assert json.loads(created["data"])["created"] is True
    assert len(json.loads(history["data"])["events"]) == 2 and int(history["id"]) >= first + 1

    # resuming after the last event seen gives what came after it: here, a live delete
    headers = {"Last-Event-ID": history["id"]}
    with client.stream("GET", "/v3/watch/sse", params={"key": b64(prefix), "prefix": "1"}, headers=headers) as live:
        client.post("/v3/kv/deleterange", json={"key": b64(prefix + "a"), "prev_kv": True})
        created, deleted = sse_events(live, 2)
    message = json.loads(deleted["data"])
    conforms(line_schema("/v3/watch/sse"), message)
    assert [event.get("type") for event in message["events"]] == ["DELETE"]
    assert deleted["id"] == message["header"]["revision"]


def test_sse_refuses_a_query_that_does_not_decode_with_an_error_object(client: httpx.Client) -> None:
    response = client.get("/v3/watch/sse", params={"key": "Zm9"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    conforms(response_schema("/v3/watch/sse", "get", "400"), response.json())


def test_sse_answers_carry_the_cors_headers(client: httpx.Client) -> None:
    bad = client.get("/v3/watch/sse", params={"key": "Zm9"})
    with client.stream("GET", "/v3/watch/sse", params={"key": b64(unique("cors"))}) as response:
        sse_events(response, 1)
        for headers in (response.headers, bad.headers):
            for name, value in CORS.items():
                assert headers.get(name) == value, name


# -- POST /v3/election/campaign and /v3/election/observe ---------------------------------------------


def test_campaign_and_observe_conform_including_a_campaign_that_waits(corral: ServerProcess) -> None:
    name = b64(unique("election"))
    first = call(corral, "Campaign", {"name": name, "value": b64("one")})
    leader = first["leader"]
    assert leader["name"] == name and int(leader["rev"]) == int(first["header"]["revision"])
    with Stream.open(corral.url, "/v3/election/observe", [{"name": name}], timeout=WAIT) as observe:
        [now] = observe.wait_count(1, WAIT)
        assert now["kv"]["key"] == leader["key"]
        call(corral, "Proclaim", {"leader": leader, "value": b64("two")})
        observe.wait_count(2, WAIT)
        with ThreadPoolExecutor(1) as pool:
            # a second candidate waits until the first resigns
            second = pool.submit(call, corral, "Campaign", {"name": name, "value": b64("three")})
            observe.wait_quiet(0.3, WAIT)
            assert not second.done(), "a second candidate was answered while the first still led"
            assert call(corral, "Leader", {"name": name})["kv"]["key"] == leader["key"]
            call(corral, "Resign", {"leader": leader})
            successor = second.result(timeout=WAIT)["leader"]
        assert successor["key"] != leader["key"]
        results = observe.wait_count(3, WAIT)
        assert [r["kv"]["value"] for r in results] == [b64("one"), b64("two"), b64("three")]
        assert_stream_head(observe, "/v3/election/observe")
        assert_lines_conform(observe, "/v3/election/observe")
        assert not observe.eof
    call(corral, "Resign", {"leader": successor})


def test_campaign_with_a_lease_that_does_not_exist_is_a_code_2_error(corral: ServerProcess) -> None:
    operation = SCHEMA.find_operation_by_id("Campaign")
    case = operation.Case(body={"name": b64(unique("e")), "lease": "1"}, media_type="application/json")
    response = case.call(base_url=corral.url, timeout=WAIT)
    case.validate_response(response, checks=CHECKS)
    assert response.status_code == 400
    assert response.json()["code"] == 2 and response.json()["message"] == "etcdserver: requested lease not found"


def test_observe_refuses_a_body_that_does_not_decode_with_an_error_object(client: httpx.Client) -> None:
    response = client.post("/v3/election/observe", json={"name": "Zm9"})
    assert response.status_code == 400
    conforms(response_schema("/v3/election/observe", "post", "400"), response.json())


# -- POST /v3/lock/lock ------------------------------------------------------------------------------


def test_lock_conforms_including_a_lock_that_waits(corral: ServerProcess, client: httpx.Client) -> None:
    name = b64(unique("lock"))
    lease = client.post("/v3/lease/grant", json={"TTL": "60"}).json()["ID"]
    held = call(corral, "Lock", {"name": name, "lease": lease})
    assert call(corral, "Lock", {"name": name, "lease": lease})["key"] == held["key"]  # re-entrant
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(call, corral, "Lock", {"name": name})
        with pytest.raises(TimeoutError):
            waiting.result(timeout=0.3)
        call(corral, "Unlock", {"key": held["key"]})
        taken = waiting.result(timeout=WAIT)
    assert taken["key"] != held["key"]
    assert int(taken["header"]["revision"]) > int(held["header"]["revision"])
    call(corral, "Unlock", {"key": taken["key"]})


# -- POST /v3/maintenance/snapshot --------------------------------------------------------------------


def test_snapshot_messages_conform_and_the_stream_ends(corral: ServerProcess, client: httpx.Client) -> None:
    key = unique("snapshot")
    put(client, key, "x" * 40_000)  # more than one 32 KiB chunk of snapshot
    with Stream.open(corral.url, "/v3/maintenance/snapshot", [{}], timeout=WAIT) as stream:
        stream.wait_eof(WAIT)
        assert stream.failure is None and stream.other == [], (stream.failure, stream.other)
        assert_stream_head(stream, "/v3/maintenance/snapshot")
        assert_lines_conform(stream, "/v3/maintenance/snapshot")
        *chunks, digest = stream.results
    assert len(chunks) >= 2 and [set(c) for c in chunks[:-1]] == [{"remaining_bytes", "blob"}] * (len(chunks) - 1)
    assert set(chunks[-1]) == set(digest) == {"blob"}  # no remaining_bytes (0) on the last chunk and the digest


def test_snapshot_refuses_a_body_that_does_not_decode_with_an_error_object(client: httpx.Client) -> None:
    response = client.post("/v3/maintenance/snapshot", content=b"[1]")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    conforms(response_schema("/v3/maintenance/snapshot", "post", "400"), response.json())
