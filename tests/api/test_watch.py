"""Watches over HTTP on one member: the stream's messages, history, filters, cancel, compaction, progress."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.api.test_http import Ns, b64, ok, put, revision
from tests.support.servers import ServerProcess

Messages = queue.Queue[dict[str, Any]]


@contextmanager
def watching(server: ServerProcess, *requests: dict[str, Any]) -> Iterator[Messages]:
    """Open `POST /v3/watch` with `requests` as its body; yield a queue of the `result` messages."""
    received: Messages = queue.Queue()
    stop = threading.Event()
    body = "".join(json.dumps(r) for r in requests).encode()

    def read() -> None:
        with httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client:
            try:
                with client.stream("POST", server.url + "/v3/watch", content=body) as response:
                    assert response.status_code == 200
                    for line in response.iter_lines():
                        if stop.is_set():
                            return
                        if line:
                            received.put(json.loads(line)["result"])
            except httpx.HTTPError:
                if not stop.is_set():
                    raise

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield received
    finally:
        stop.set()


def take(messages: Messages, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
    return [messages.get(timeout=timeout) for _ in range(n)]


def keys_of(message: dict[str, Any]) -> list[str]:
    import base64

    return [base64.b64decode(e["kv"]["key"]).decode() for e in message.get("events", [])]


def test_a_prefix_watch_gets_each_revision_once_and_a_txn_together(server: ServerProcess, ns: Ns) -> None:
    prefix = ns("p/")
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        with watching(server, {"create_request": {"key": b64(prefix), "range_end": b64(end), "prev_kv": True}}) as got:
            (created,) = take(got)
            assert created["created"] is True and "watch_id" not in created
            put(client, prefix + b"a", b"1")
            put(client, prefix + b"a", b"2")
            put(client, ns("elsewhere"))
            ok(client, "/v3/kv/txn", {"success": [{"request_put": {"key": b64(prefix + b"b")}},
                                                   {"request_put": {"key": b64(prefix + b"c")}}]})  # fmt: skip
            ok(client, "/v3/kv/deleterange", {"key": b64(prefix), "range_end": b64(end)})
            first, second, txn, deleted = take(got, 4)
            assert [keys_of(m) for m in (first, second, txn)] == [[f"{ns('p/').decode()}a"]] * 2 + [
                [f"{ns('p/').decode()}b", f"{ns('p/').decode()}c"]
            ]
            assert second["events"][0]["prev_kv"]["value"] == b64(b"1")
            revisions = {e["kv"]["mod_revision"] for e in txn["events"]}
            assert revisions == {txn["header"]["revision"]}
            assert {e["type"] for e in deleted["events"]} == {"DELETE"} and len(deleted["events"]) == 3
            assert all(set(e["kv"]) == {"key", "mod_revision"} for e in deleted["events"])


def test_history_filters_ids_progress_and_cancel(server: ServerProcess, ns: Ns) -> None:
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        start = revision(client) + 1
        put(client, ns("k"), b"1")
        ok(client, "/v3/kv/deleterange", {"key": b64(ns("k"))})
        put(client, ns("k"), b"2")
        noput = {"key": b64(ns("k")), "start_revision": str(start), "filters": ["NOPUT"], "watch_id": "7"}
        with watching(server, {"create_request": noput}, {"progress_request": {}}) as got:
            created, *rest = take(got, 3)
            assert (created["watch_id"], created["created"]) == ("7", True)
            progress = next(m for m in rest if m["watch_id"] == "-1")
            assert set(progress) == {"header", "watch_id"}
            history = next(m for m in rest if "events" in m)
            assert history["watch_id"] == "7" and [e.get("type") for e in history["events"]] == ["DELETE"]
        everything = {"key": b64(ns("k")), "start_revision": str(start)}
        with watching(server, {"create_request": everything}, {"cancel_request": {"watch_id": "0"}}) as got:
            messages = take(got, 2)
            assert messages[0]["created"] is True and "watch_id" not in messages[0]
            # The history may or may not make it out before the cancel; the cancel's reply always does.
            if "events" in messages[1]:
                assert len(messages[1]["events"]) == 3  # the three changes, in one message
                messages += take(got)
            assert messages[-1]["canceled"] is True


def test_a_compacted_start_is_cancelled_with_the_compaction_revision(fresh_server: ServerProcess) -> None:
    with httpx.Client(base_url=fresh_server.url, timeout=10.0) as client:
        for i in range(4):
            put(client, b"k", str(i).encode())
        ok(client, "/v3/kv/compaction", {"revision": "4"})
        with watching(fresh_server, {"create_request": {"key": b64(b"k"), "start_revision": "2"}}) as got:
            created, compacted = take(got, 2)
        assert created["created"] is True
        assert compacted["canceled"] is True and compacted["compact_revision"] == "4"
        assert "revision" not in compacted["header"]
        with watching(fresh_server, {"create_request": {"key": b64(b"k"), "start_revision": "4"}}) as got:
            _, history = take(got, 2)
        assert [e["kv"]["value"] for e in history["events"]] == [b64(b"2"), b64(b"3")]


def test_refused_watches(server: ServerProcess) -> None:
    with watching(server, {"create_request": {"key": b64(b"b"), "range_end": b64(b"a")}}) as got:
        (refused,) = take(got)
    assert (refused["watch_id"], refused["canceled"], refused["cancel_reason"]) == (
        "-1", True, "mvcc: watcher range is empty",
    )  # fmt: skip
    bad = httpx.post(server.url + "/v3/watch", content=b'{"create_request":{"key":"!!"}}', timeout=5.0)
    assert bad.status_code == 400 and bad.json()["message"] == "illegal base64 data at input byte 0"


def test_server_sent_events_resume_after_the_last_event_id(server: ServerProcess, ns: Ns) -> None:
    prefix = b64(ns("sse/"))
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        start = revision(client) + 1
        for value in (b"1", b"2", b"3"):
            put(client, ns("sse/k"), value)

        def read(headers: dict[str, str], count: int) -> list[tuple[str | None, dict[str, Any]]]:
            events: list[tuple[str | None, dict[str, Any]]] = []
            params = {"key": prefix, "prefix": "true", "start_revision": str(start)}
            with client.stream("GET", "/v3/watch/sse", params=params, headers=headers) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                event_id = None
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        events.append((event_id, json.loads(line[6:])))
                        event_id = None
                        if len(events) == count:
                            return events
            return events

        created, history = read({}, 2)
        assert created[1]["created"] is True
        assert [e["kv"]["value"] for e in history[1]["events"]] == [b64(b"1"), b64(b"2"), b64(b"3")]
        assert history[0] == str(start + 2)
        _, resumed = read({"Last-Event-ID": str(start)}, 2)  # seen through the first put
        assert [e["kv"]["value"] for e in resumed[1]["events"]] == [b64(b"2"), b64(b"3")]
