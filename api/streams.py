"""What etcd's streaming routes share over HTTP (watch, lease keep-alive, snapshot).

A request body is a sequence of JSON objects, acted on one by one as they arrive (whitespace between
them is optional). A response is one `{"result": <message>}` line per message, each flushed at once,
status 200 and `application/json`, as etcd's gateway streams them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

from corral.store.errors import EtcdError
from starlette.types import Receive, Send

from . import codec
from .errors import error_response
from .gateway import CORS_HEADERS

_HEADERS = [(b"content-type", b"application/json"), *CORS_HEADERS]


async def request_objects(receive: Receive, message: str) -> AsyncIterator[dict[str, Any]]:
    """The body's JSON objects as each one completes. Raises codec.DecodeError for one that is not a
    `message` object; ends when the body does, or when the client goes away."""
    async for batch in request_batches(receive, message):
        for fields in batch:
            yield fields


async def request_batches(receive: Receive, message: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Like `request_objects`, but the objects completed by each piece of the body together."""
    buffer, more = "", True
    while more:
        event = await receive()
        if event["type"] == "http.disconnect":
            return
        buffer += event.get("body", b"").decode("utf-8", errors="replace")
        more = event.get("more_body", False)
        values, buffer = split_values(buffer, final=not more)
        batch: list[dict[str, Any]] = []
        for text in values:
            try:
                batch.append(codec.load_body(text.encode(), message))
            except codec.DecodeError:
                if batch:
                    yield batch  # what came before the bad object is still served
                raise
        if batch:
            yield batch


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class ResponseStream:
    """The response side: starts with the first message, one line per message."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def write(self, message: dict[str, Any]) -> None:
        await self.write_line(codec.dumps({"result": message}) + b"\n")

    async def write_line(self, line: bytes) -> None:
        if not self.started:
            self.started = True
            await self._send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await self._send({"type": "http.response.body", "body": line, "more_body": True})

    async def fail(self, error: EtcdError) -> None:
        """End a started stream with etcd's final error chunk (no newline after it)."""
        status, _ = error_response(error)
        body = {"grpc_code": int(error.code), "http_code": status, "message": error.message,
                "http_status": HTTPStatus(status).phrase}  # fmt: skip
        await self._send({"type": "http.response.body", "body": codec.dumps({"error": body}), "more_body": True})
        await self._send({"type": "http.response.body", "body": b""})

    async def finish(self) -> None:
        if not self.started:
            self.started = True
            await self._send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await self._send({"type": "http.response.body", "body": b""})


def split_values(buffer: str, final: bool) -> tuple[list[str], str]:
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
