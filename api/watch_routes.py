"""etcd's watch service over HTTP: `POST /v3/watch`, a stream in both directions.

The request body is read as it arrives: a sequence of JSON `WatchRequest` objects (create, cancel,
progress), each acted on at once. The response is one `{"result": WatchResponse}` line per message,
streamed for as long as the client stays (after the request body ends too, as etcd's gateway does).

Each watcher is pumped by its own task into one bounded queue that a single writer drains into the
response; a slow client fills the queue, the pumps wait, and the watchers read from the store's
history when they resume (see `corral.watch.hub`), so memory stays bounded and no event is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from corral.store.errors import EtcdError, GrpcCode
from corral.store.types import Event, EventType
from corral.watch.hub import WatchBatch, Watcher, WatcherClosed, WatchHub, WatchSpec
from starlette.types import Receive, Scope, Send

from . import codec
from .errors import error_response
from .gateway import CORS_HEADERS, send_json
from .server import CorralServer

QUEUE_MESSAGES = 256  # responses waiting for the client, per stream
_FILTERS = {"NOPUT": 0, "NODELETE": 1}
_CREATE_FIELDS = codec.aliases(
    "key", "range_end", "start_revision", "progress_notify", "filters", "prev_kv", "watch_id", "fragment"
)
_REQUEST_FIELDS = codec.aliases("create_request", "cancel_request", "progress_request")
_CANCEL_FIELDS = codec.aliases("watch_id")


class WatchRoutes:
    def __init__(self, server: CorralServer, hub: WatchHub, progress_interval: float) -> None:
        self._server = server
        self._hub = hub
        self._progress_interval = progress_interval

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await WatchStream(self._server, self._hub, self._progress_interval, receive, send).run()


class WatchStream:
    """One `POST /v3/watch`: its watchers, their ids, and the response being streamed."""

    def __init__(
        self, server: CorralServer, hub: WatchHub, progress_interval: float, receive: Receive, send: Send
    ) -> None:
        self._server = server
        self._hub = hub
        self._progress_interval = progress_interval
        self._receive = receive
        self._send = send
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_MESSAGES)
        self._watchers: dict[int, tuple[Watcher, asyncio.Task[None], bool]] = {}  # id -> watcher, pump, notify
        self._next_id = 0
        self._started = False
        self._quiet: set[int] = set()  # progress-notify watchers with no events since the last notice

    async def run(self) -> None:
        requests = asyncio.create_task(self._read_requests())
        progress = asyncio.create_task(self._notify_progress()) if self._progress_interval > 0 else None
        try:
            first = await self._next_message()
            if first is None:
                return
            await self._start_response()
            while first is not None:
                await self._write(first)
                first = await self._next_message()
        finally:
            for task in [requests, *([progress] if progress else []), *(p for _, p, _ in self._watchers.values())]:
                task.cancel()
            for watcher, _, _ in self._watchers.values():
                watcher.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await requests

    # -- the request side --------------------------------------------------------------------------

    async def _read_requests(self) -> None:
        """Act on each request object as it completes; then wait for the client to go away."""
        buffer, first, more = "", True, True
        while more:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                await self._outgoing.put(b"")  # end the response
                return
            buffer += message.get("body", b"").decode("utf-8", errors="replace")
            more = message.get("more_body", False)
            objects, buffer = _split_objects(buffer, final=not more)
            for text in objects:
                try:
                    request = _decode(text)
                except (codec.DecodeError, EtcdError, json.JSONDecodeError) as exc:
                    if first:  # a bad first object gets a unary error (etcd's gateway: code 2 and a 500)
                        error = exc if isinstance(exc, EtcdError) else EtcdError(str(exc), GrpcCode.INVALID_ARGUMENT)
                        await self._outgoing.put(b"!" + _unary_error(error))
                        return
                    more = False  # later bad input half-closes the request side; the stream goes on
                    break
                first = False
                await self._handle(request)
        while (await self._receive())["type"] != "http.disconnect":
            pass
        await self._outgoing.put(b"")

    async def _handle(self, request: dict[str, Any]) -> None:
        if "create_request" in request:
            await self._create(request["create_request"])
        elif "cancel_request" in request:
            await self._cancel(codec.to_int(request["cancel_request"].get("watch_id")))
        elif "progress_request" in request:
            await self._emit({"header": self._header(), "watch_id": "-1"})

    async def _create(self, fields: dict[str, Any]) -> None:
        key = codec.b64decode(fields.get("key")) or b"\x00"
        range_end = codec.b64decode(fields.get("range_end"))
        wanted_id = codec.to_int(fields.get("watch_id"))
        filters = {_filter(value) for value in codec.array(fields.get("filters"), "WatchCreateRequest_FilterType")}
        if range_end and range_end != b"\x00" and range_end < key:
            return await self._refuse("mvcc: watcher range is empty")
        if wanted_id and wanted_id in self._watchers:
            return await self._refuse("mvcc: duplicate watch ID provided on the WatchStream")
        watch_id = wanted_id or self._take_id()
        spec = WatchSpec(
            key, range_end, codec.to_int(fields.get("start_revision")), 0 in filters, 1 in filters,
            codec.to_bool(fields.get("prev_kv")),
        )  # fmt: skip
        watcher = self._hub.watch(spec)
        await self._emit({"header": self._header(), **_id_field(watch_id), "created": True})
        notify = codec.to_bool(fields.get("progress_notify"))
        pump = asyncio.create_task(self._pump(watch_id, watcher))
        self._watchers[watch_id] = (watcher, pump, notify)

    def _take_id(self) -> int:
        while self._next_id in self._watchers:
            self._next_id += 1
        watch_id = self._next_id
        self._next_id += 1
        return watch_id

    async def _refuse(self, reason: str) -> None:
        await self._emit({"header": self._header(), "watch_id": "-1", "created": True, "canceled": True,
                          "cancel_reason": reason})  # fmt: skip

    async def _cancel(self, watch_id: int) -> None:
        entry = self._watchers.pop(watch_id, None)
        if entry is None:
            return  # etcd sends nothing for an unknown id
        watcher, pump, _ = entry
        pump.cancel()
        watcher.close()
        await self._emit({"header": self._header(), **_id_field(watch_id), "canceled": True})

    # -- the response side -------------------------------------------------------------------------

    async def _pump(self, watch_id: int, watcher: Watcher) -> None:
        try:
            while True:
                batch = await watcher.next()
                self._quiet.discard(watch_id)
                await self._emit(self._batch_message(watch_id, batch))
                if batch.compact_revision:
                    self._watchers.pop(watch_id, None)
                    return
        except WatcherClosed:
            return

    def _batch_message(self, watch_id: int, batch: WatchBatch) -> dict[str, Any]:
        if batch.compact_revision:
            header = self._header()
            del header["revision"]  # as etcd: a compacted watcher's header has no revision
            return {"header": header, **_id_field(watch_id), "canceled": True,
                    "compact_revision": str(batch.compact_revision)}  # fmt: skip
        events = [_event(event) for event in batch.events]
        return {"header": self._server.header(batch.revision), **_id_field(watch_id), "events": events}

    async def _notify_progress(self) -> None:
        """etcd's progress notifications: the current revision, to each synced watcher that asked for
        them and got no events during the interval."""
        while True:
            self._quiet = {watch_id for watch_id, (_, _, notify) in self._watchers.items() if notify}
            await asyncio.sleep(self._progress_interval)
            for watch_id in sorted(self._quiet):
                entry = self._watchers.get(watch_id)
                if entry is not None and entry[0].synced:
                    await self._emit({"header": self._header(), **_id_field(watch_id)})

    async def _emit(self, message: dict[str, Any]) -> None:
        await self._outgoing.put(codec.dumps({"result": message}) + b"\n")

    async def _next_message(self) -> bytes | None:
        message = await self._outgoing.get()
        if not message:
            return None
        if message.startswith(b"!"):
            status, body = int(message[1:4]), message[4:]
            await send_json(self._send, status, body)
            return None
        return message

    async def _start_response(self) -> None:
        if not self._started:
            self._started = True
            headers = [(b"content-type", b"application/json"), *CORS_HEADERS]
            await self._send({"type": "http.response.start", "status": 200, "headers": headers})

    async def _write(self, message: bytes) -> None:
        await self._send({"type": "http.response.body", "body": message, "more_body": True})

    def _header(self) -> dict[str, Any]:
        return self._server.header(self._hub.store.revision)


def _unary_error(error: EtcdError) -> bytes:
    status, body = error_response(error)
    return str(status).encode() + body


def _decode(text: str) -> dict[str, Any]:
    """A WatchRequest as a dict with canonical names: only its known fields, each decoded."""
    request = codec.fields(codec.load_body(text.encode(), "etcdserverpb.WatchRequest"), _REQUEST_FIELDS)
    out: dict[str, Any] = {}
    if "create_request" in request:
        create = codec.object_(request["create_request"], "etcdserverpb.WatchCreateRequest")
        out["create_request"] = codec.fields(create, _CREATE_FIELDS)
        _validate_create(out["create_request"])
    elif "cancel_request" in request:
        cancel = codec.object_(request["cancel_request"], "etcdserverpb.WatchCancelRequest")
        out["cancel_request"] = codec.fields(cancel, _CANCEL_FIELDS)
    elif "progress_request" in request:
        out["progress_request"] = {}
    return out


def _validate_create(fields: dict[str, Any]) -> None:
    """Decode every field once up front, so a bad one is a decode error of this request."""
    codec.b64decode(fields.get("key"))
    codec.b64decode(fields.get("range_end"))
    for name in ("start_revision", "watch_id"):
        codec.to_int(fields.get(name))
    for name in ("progress_notify", "prev_kv", "fragment"):
        codec.to_bool(fields.get(name))
    for value in codec.array(fields.get("filters"), "WatchCreateRequest_FilterType"):
        _filter(value)


def _filter(value: Any) -> int:
    if isinstance(value, str) and value in _FILTERS:
        return _FILTERS[value]
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return value
    raise codec.DecodeError(f"unknown value {json.dumps(value)} for enum etcdserverpb.WatchCreateRequest_FilterType")


def _id_field(watch_id: int) -> dict[str, str]:
    return {"watch_id": str(watch_id)} if watch_id else {}


def _event(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if event.type is EventType.DELETE:
        out["type"] = "DELETE"
    out["kv"] = codec.encode_kv(event.kv)
    if event.prev_kv is not None:
        out["prev_kv"] = codec.encode_kv(event.prev_kv)
    return out


def _split_objects(buffer: str, final: bool) -> tuple[list[str], str]:
    """Complete top-level JSON values at the front of `buffer`, and what is left (an unfinished one).
    With `final`, the rest is returned as a value of its own, so that it fails to decode."""
    values: list[str] = []
    depth, in_string, escaped, start = 0, False, False, None
    for i, char in enumerate(buffer):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
            if start is None:
                start = i
        elif char in "{[":
            if start is None:
                start = i
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth <= 0 and start is not None:
                values.append(buffer[start : i + 1])
                start, depth = None, 0
        elif not char.isspace() and start is None:
            start = i
    rest = buffer[start:] if start is not None else ""
    if final and rest.strip():
        values.append(rest)
        rest = ""
    return values, rest
