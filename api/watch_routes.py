"""etcd's watch service over HTTP: `POST /v3/watch`, a stream in both directions.

The request body is read as it arrives: a sequence of JSON `WatchRequest` objects (create, cancel,
progress), each acted on at once. The response is one `{"result": WatchResponse}` line per message,
streamed for as long as the client stays (after the request body ends too, as etcd's gateway does).

Each watcher is pumped by its own task into one bounded queue that a single writer drains into the
response; a slow client fills the queue, the pumps wait, and the watchers read from the store's
history when they resume (see `corral.watch.hub`), so memory stays bounded and no event is lost.

A watch created with `fragment` gets a message of events that would reach etcd's limit (max-request-bytes
+ 512 KiB, in protobuf) as several messages with the same header, each but the last marked `fragment`
(`limits.fragment_ends`); other watches get whole messages, however large.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from corral.store import kv
from corral.store.errors import EtcdError
from corral.store.types import Event, EventType
from corral.watch.hub import WatchBatch, Watcher, WatcherClosed, WatchHub, WatchSpec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from . import codec, streams
from .errors import error_response
from .gateway import CORS_HEADERS, send_json
from .limits import event_size, fragment_ends, watch_response_size
from .server import GRPC_OVERHEAD_BYTES, CorralServer

_CORS = {name.decode(): value.decode() for name, value in CORS_HEADERS}
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
        self._response = streams.ResponseStream(send)
        self._quiet: set[int] = set()  # progress-notify watchers with no events since the last notice

    async def run(self) -> None:
        requests = asyncio.create_task(self._read_requests())
        progress = asyncio.create_task(self._notify_progress()) if self._progress_interval > 0 else None
        try:
            while (message := await self._next_message()) is not None:
                await self._response.write_line(message)
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
        first = True
        try:
            async for fields in streams.request_objects(self._receive, "etcdserverpb.WatchRequest"):
                request = _decode(fields)
                first = False
                await self._handle(request)
        except EtcdError as error:
            if first:  # a bad first object gets a unary error (etcd's gateway: code 2 and a 500)
                await self._outgoing.put(b"!" + _unary_error(error))
                return
            # later bad input half-closes the request side; the stream goes on
        await streams.wait_for_disconnect(self._receive)
        await self._outgoing.put(b"")  # end the response

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
        fragment = codec.to_bool(fields.get("fragment"))
        limit = self._server.config.max_request_bytes + GRPC_OVERHEAD_BYTES if fragment else 0
        pump = asyncio.create_task(self._pump(watch_id, watcher, limit))
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

    async def _pump(self, watch_id: int, watcher: Watcher, fragment_limit: int) -> None:
        """Send the watcher's batches; with a `fragment_limit` (bytes), a large one as etcd's fragments."""
        try:
            while True:
                batch = await watcher.next()
                self._quiet.discard(watch_id)
                message = _batch_message(self._server, self._hub, watch_id, batch)
                for part in _fragments(message, batch, watch_id, fragment_limit) if fragment_limit else [message]:
                    await self._emit(part)
                if batch.compact_revision:
                    self._watchers.pop(watch_id, None)
                    return
        except WatcherClosed:
            return

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

    def _header(self) -> dict[str, Any]:
        return self._server.header(self._hub.store.revision)


def _batch_message(server: CorralServer, hub: WatchHub, watch_id: int, batch: WatchBatch) -> dict[str, Any]:
    if batch.compact_revision:
        header = server.header(hub.store.revision)
        del header["revision"]  # as etcd: a compacted watcher's header has no revision
        return {"header": header, **_id_field(watch_id), "canceled": True,
                "compact_revision": str(batch.compact_revision)}  # fmt: skip
    events = [_event(event) for event in batch.events]
    return {"header": server.header(batch.revision), **_id_field(watch_id), "events": events}


def _fragments(message: dict[str, Any], batch: WatchBatch, watch_id: int, limit: int) -> list[dict[str, Any]]:
    """An events message as etcd sends it to a `fragment` watch: whole, or split into messages with the
    same header, the events in order, `"fragment": true` on every one but the last."""
    if len(batch.events) < 2:
        return [message]
    base = watch_response_size(message["header"], watch_id)
    ends = fragment_ends(base, [event_size(event) for event in batch.events], limit)
    if len(ends) == 1:
        return [message]
    events, start, parts = message["events"], 0, []
    for end in ends:
        part = {"header": message["header"], **_id_field(watch_id)}
        if end < len(events):
            part["fragment"] = True
        part["events"] = events[start:end]
        parts.append(part)
        start = end
    return parts


def _unary_error(error: EtcdError) -> bytes:
    status, body = error_response(error)
    return str(status).encode() + body


def _decode(body: dict[str, Any]) -> dict[str, Any]:
    """A WatchRequest as a dict with canonical names: only its known fields, each checked."""
    request = codec.fields(body, _REQUEST_FIELDS)
    out: dict[str, Any] = {}
    if request.get("create_request") is not None:  # null is the same as absent
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


class WatchEvents:
    """`GET /v3/watch/sse?key=<base64>[&range_end=<base64>|&prefix=true][&start_revision=N][&prev_kv=true]`:
    one watch as Server-Sent Events, for browsers and `curl -N` (beyond etcd). Each message is the JSON
    stream's `WatchResponse` in a `data:` line, with the header revision as the event id, so an
    EventSource that reconnects with `Last-Event-ID` resumes after it with no gap and no duplicate."""

    def __init__(self, server: CorralServer, hub: WatchHub) -> None:
        self._server = server
        self._hub = hub

    async def endpoint(self, request: Request) -> Response:
        try:
            spec = self._spec(request)
        except EtcdError as error:
            status, body = error_response(error)
            return Response(body, status, media_type="application/json", headers=_CORS)
        watcher = self._hub.watch(spec)
        header = self._server.header(self._hub.store.revision)
        return StreamingResponse(
            self._events(watcher, {"header": header, "created": True}),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **_CORS},
        )

    def _spec(self, request: Request) -> WatchSpec:
        query = request.query_params
        key = _query_bytes(query.get("key")) or b"\x00"
        range_end = _query_bytes(query.get("range_end"))
        if query.get("prefix") in ("true", "1"):
            range_end = kv.prefix_end(key)
        start = codec.to_int(query.get("start_revision"))
        if (last := request.headers.get("last-event-id")) is not None:
            start = codec.to_int(last) + 1
        prev_kv = query.get("prev_kv") in ("true", "1")
        return WatchSpec(key, range_end, start, prev_kv=prev_kv)

    async def _events(self, watcher: Watcher, created: dict[str, Any]) -> AsyncIterator[bytes]:
        try:
            yield b"data: " + codec.dumps(created) + b"\n\n"
            while True:
                batch = await watcher.next()
                message = _batch_message(self._server, self._hub, 0, batch)
                if batch.compact_revision:
                    # A named event with no id: a client must stop (reconnecting would meet the
                    # compaction again); an EventSource listens for "compacted" and closes.
                    yield b"event: compacted\ndata: " + codec.dumps(message) + b"\n\n"
                    return
                yield f"id: {batch.through}\n".encode() + b"data: " + codec.dumps(message) + b"\n\n"
        except WatcherClosed:
            return
        finally:
            watcher.close()


def _query_bytes(value: str | None) -> bytes:
    """A base64 query parameter; URL-safe base64 is accepted too."""
    if not value:
        return b""
    return codec.b64decode(value.replace("-", "+").replace("_", "/"))
