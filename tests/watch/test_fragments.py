"""`fragment` watches: a message of events that reaches etcd's limit (max-request-bytes + 512 KiB, as
protobuf) is sent as several messages with one header, each but the last marked `"fragment": true`.

etcd's rule (its v3rpc watch server): a message below the limit, or with fewer than two events, goes whole;
otherwise each fragment, sized with its fragment flag, takes the next event and then more while it stays
below the limit. The exact byte where etcd splits is checked against etcd in
`tests.compat.test_etcd_watch`; here Corral's messages over HTTP, and the rule on synthetic sizes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from corral.api.limits import event_size, fragment_ends
from corral.store.types import Event, EventType, KeyValue

from tests.support.servers import ServerProcess, corral_process, running
from tests.support.streams import Stream

Json = Any

# A txn may write up to max-request-bytes, and a watch message splits at max-request-bytes + 512 KiB: only
# with prev_kv (or history, or a delete of many keys) can one revision's message reach the limit.
MAX_REQUEST_BYTES = 600 * 1024
LIMIT = MAX_REQUEST_BYTES + 512 * 1024
KEYS = 10
VALUE = 60_000  # ten of them fit in one txn; with prev_kv, nine events stay below LIMIT and ten do not


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def corral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("fragments") / "data"
    with running(corral_process(data_dir, extra=["--max-request-bytes", str(MAX_REQUEST_BYTES)])) as server:
        yield server


def put_all(client: httpx.Client, prefix: bytes, fill: bytes) -> int:
    """One txn that puts KEYS keys under `prefix`, each VALUE bytes of `fill`; returns its revision."""
    ops = [{"request_put": {"key": b64(prefix + b"%02d" % i), "value": b64(fill * VALUE)}} for i in range(KEYS)]
    response = client.post("/v3/kv/txn", json={"success": ops})
    assert response.status_code == 200, response.text[:300]
    return int(response.json()["header"]["revision"])


def watch(prefix: bytes, **fields: Json) -> Json:
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    return {"create_request": {"key": b64(prefix), "range_end": b64(end), **fields}}


def by_watch(results: list[Json]) -> dict[str, list[Json]]:
    out: dict[str, list[Json]] = {}
    for message in results:
        if "events" in message:
            out.setdefault(message.get("watch_id", "0"), []).append(message)
    return out


def shape(messages: list[Json]) -> list[tuple[int, bool]]:
    return [(len(m["events"]), m.get("fragment", False)) for m in messages]


def events_of(messages: list[Json]) -> list[tuple[bytes, int, str | None]]:
    """(key, mod_revision, type) of each event, in order, across the messages."""
    return [
        (base64.b64decode(e["kv"]["key"]), int(e["kv"]["mod_revision"]), e.get("type"))
        for m in messages
        for e in m["events"]
    ]


def test_a_txn_with_large_values_is_fragmented_only_for_fragment_watches(corral: ServerProcess) -> None:
    prefix = b"txn/"
    with httpx.Client(base_url=corral.url, timeout=15.0) as client:
        first = put_all(client, prefix, b"a")
        requests = [
            watch(prefix, prev_kv=True, fragment=True),  # 0: ~1.2 MB: split
            watch(prefix, prev_kv=True),  # 1: the same, never split
            watch(prefix, fragment=True),  # 2: ~600 KB: below the limit, whole
        ]
        with Stream.open(corral.url, "/v3/watch", requests) as stream:
            stream.wait_count(3, 5.0)
            second = put_all(client, prefix, b"b")
            stream.wait_for(lambda rs: sum(len(m.get("events", ())) for m in rs) >= 3 * KEYS, 10.0, "every event")
            results = stream.wait_quiet(0.3, 5.0)
    messages = by_watch(results)
    assert shape(messages["0"]) == [(9, True), (1, False)]
    assert shape(messages["1"]) == [(10, False)]
    assert shape(messages["2"]) == [(10, False)]
    headers = {str(m["header"]) for m in messages["0"]}
    assert len(headers) == 1 and messages["0"][0]["header"]["revision"] == str(second)
    expected = [(prefix + b"%02d" % i, second, None) for i in range(KEYS)]
    for watch_id in ("0", "1", "2"):
        assert events_of(messages[watch_id]) == expected
    fragment = [e for m in messages["0"] for e in m["events"]]
    assert fragment == messages["1"][0]["events"]  # together, the fragments are the whole message
    assert all(int(e["prev_kv"]["mod_revision"]) == first for e in fragment)
    assert list(messages["0"][0]) == ["header", "fragment", "events"]  # watch id 0 is left out, as etcd does


def test_history_is_fragmented_and_a_deleterange_with_prev_kv_too(corral: ServerProcess) -> None:
    prefix = b"hist/"
    with httpx.Client(base_url=corral.url, timeout=15.0) as client:
        first = put_all(client, prefix, b"c")
        second = put_all(client, prefix, b"d")
        requests = [
            watch(prefix, start_revision=first, fragment=True, watch_id="4"),  # 20 events of ~60 KB: 18 + 2
            watch(prefix, start_revision=first, watch_id="5"),
            watch(prefix, prev_kv=True, fragment=True, watch_id="6"),  # the deletes carry ~60 KB prev_kv each
        ]
        with Stream.open(corral.url, "/v3/watch", requests) as stream:
            stream.wait_count(3, 5.0)
            response = client.post("/v3/kv/deleterange", json={"key": b64(prefix), "range_end": b64(b"hist0")})
            deleted = int(response.json()["header"]["revision"])
            stream.wait_for(lambda rs: sum(len(m.get("events", ())) for m in rs) >= 5 * KEYS, 10.0, "every event")
            results = stream.wait_quiet(0.3, 5.0)
    messages = by_watch(results)
    history, live = messages["4"][:-1], messages["4"][-1:]
    assert shape(history) == [(18, True), (2, False)] and shape(live) == [(10, False)]
    assert {m["header"]["revision"] for m in history} == {str(second)}  # history: the store's revision
    assert shape(messages["5"]) == [(20, False), (10, False)]
    assert events_of(messages["4"]) == events_of(messages["5"])
    assert [revision for _, revision, _ in events_of(history)] == [first] * KEYS + [second] * KEYS
    # ten deletes with prev_kv are ~600 KB: whole (a DELETE's own kv is just key and revision)
    assert shape(messages["6"]) == [(10, False)]
    assert events_of(messages["6"]) == [(prefix + b"%02d" % i, deleted, "DELETE") for i in range(KEYS)]


# ---- the rule itself ----------------------------------------------------------------------------------


def test_the_split_rule() -> None:
    # below the limit: whole; at the limit: split (the fragment flag adds 2 bytes to each fragment)
    assert fragment_ends(10, [30, 30, 29], 100) == [3]
    assert fragment_ends(10, [30, 30, 30], 100) == [2, 3]
    # each fragment stays below the limit: 12 + 30 + 30 + 27 = 99 fits, 12 + 30 + 30 + 28 = 100 does not
    assert fragment_ends(10, [30, 30, 27, 30], 100) == [3, 4]
    assert fragment_ends(10, [30, 30, 28, 30], 100) == [2, 4]
    # one event goes whole however large; otherwise an oversized event is a fragment of its own
    assert fragment_ends(10, [500], 100) == [1]
    assert fragment_ends(10, [500, 20, 20, 500, 500], 100) == [1, 3, 4, 5]
    assert fragment_ends(10, [], 100) == [0]


def test_event_size_is_the_protobuf_size() -> None:
    # Event{kv: KeyValue{key "s0/00", create 2, mod 2, version 1, value 50000 bytes}}, as a repeated field:
    # kv = 7 + 2 + 2 + 2 + 50004 = 50017; Event = 1 + 3 + 50017; the element = 1 + 3 + 50021
    put = Event(EventType.PUT, KeyValue(b"s0/00", 2, 2, 1, b"x" * 50_000))
    assert event_size(put) == 50_025
    # a DELETE: type (2 bytes) and kv {key, mod_revision}; prev_kv adds a KeyValue of its own
    deleted = Event(EventType.DELETE, KeyValue(b"k", 0, 300, 0), KeyValue(b"k", 2, 2, 1, b"v", lease=7))
    assert event_size(deleted) == 2 + (2 + 3 + 3) + (2 + 3 + 2 + 2 + 2 + 3 + 2) + 2
