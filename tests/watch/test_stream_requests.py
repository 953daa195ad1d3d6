"""Requests that arrive on a watch stream after it has started (Corral alone: etcd 3.4's HTTP/1.1 gateway
does not answer before the request body ends, see `tests.support.streams`): progress, cancel and create
in later chunks, and a stream that stays open once the request body has ended."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import ServerProcess, corral_process, running
from tests.support.streams import Stream

Json = Any


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def corral(tmp_path: Path) -> Iterator[ServerProcess]:
    with running(corral_process(tmp_path / "data")) as server:
        yield server


def put(client: httpx.Client, key: bytes, value: bytes = b"v") -> int:
    response = client.post("/v3/kv/put", json={"key": b64(key), "value": b64(value)})
    assert response.status_code == 200, response.text
    return int(response.json()["header"]["revision"])


def strip(message: Json) -> Json:
    """A message with only the header's revision, and each event as (watch id, key, revision)."""
    out = {name: value for name, value in message.items() if name not in ("header", "events")}
    out["revision"] = message["header"].get("revision")
    if "events" in message:
        out["events"] = [(base64.b64decode(e["kv"]["key"]), int(e["kv"]["mod_revision"])) for e in message["events"]]
    return out


def test_progress_cancel_and_create_in_later_chunks(corral: ServerProcess) -> None:
    with httpx.Client(base_url=corral.url, timeout=10.0) as client:
        create = {"create_request": {"key": b64(b"p/"), "range_end": b64(b"p0")}}
        with Stream.open(corral.url, "/v3/watch", [create], end=False) as stream:
            stream.wait_count(1, 5.0)
            first = put(client, b"p/a")
            stream.wait_count(2, 5.0)
            stream.send({"progress_request": {}})
            stream.wait_count(3, 5.0)
            stream.send({"cancel_request": {"watch_id": "0"}}, {"cancel_request": {"watch_id": "5"}})
            stream.wait_count(4, 5.0)
            put(client, b"p/b")  # nobody watches p/ now
            stream.send({"create_request": {"key": b64(b"p/c"), "watch_id": "5"}})
            stream.wait_count(5, 5.0)
            stream.end({"progress_request": {}})
            stream.wait_count(6, 5.0)
            last = put(client, b"p/c")  # the request body has ended; the response goes on
            results = stream.wait_count(7, 5.0)
            assert [strip(r) for r in stream.wait_quiet(0.3, 5.0)] == [
                {"created": True, "revision": str(first - 1)},
                {"events": [(b"p/a", first)], "revision": str(first)},
                {"watch_id": "-1", "revision": str(first)},
                {"canceled": True, "revision": str(first)},  # the unknown id 5 gets no answer
                {"watch_id": "5", "created": True, "revision": str(first + 1)},
                {"watch_id": "-1", "revision": str(first + 1)},
                {"watch_id": "5", "events": [(b"p/c", last)], "revision": str(last)},
            ]
            assert len(results) == 7 and not stream.eof
