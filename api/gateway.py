"""A raw ASGI front for etcd's unary JSON routes, with everything else handed to Starlette.

The unary `POST /v3/...` routes are the hot path: one dict lookup, the body read straight off the
ASGI channel, the JSON reply written in one message. Starlette's request/response machinery costs more
per request than the whole store apply, so it serves only the other routes (health, version, streams).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from corral.consensus.log import LogError
from corral.store.errors import EtcdError
from starlette.types import ASGIApp, Receive, Scope, Send

from .codec import DecodeError
from .errors import MessageTooLarge, error_response, from_log_error

if TYPE_CHECKING:
    from .tracing import Tracing

UnaryHandler = Callable[[bytes], Awaitable[bytes]]

CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, GET, OPTIONS, PUT, DELETE"),
    (b"access-control-allow-headers", b"accept, content-type, authorization"),
]
_JSON = (b"content-type", b"application/json")


class BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"request body of {size} bytes")
        self.size = size


class Gateway:
    """Dispatches `POST /v3/<service>/<method>` to unary handlers; other requests go to `fallback`."""

    def __init__(
        self,
        routes: dict[str, UnaryHandler],
        fallback: ASGIApp,
        max_body_bytes: int,
        receive_limit: int,
        streams: dict[str, ASGIApp] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._routes = routes
        self._tracing = tracing  # None: tracing is off
        self._streams = streams or {}
        self._fallback = fallback
        self._max_body_bytes = max_body_bytes
        self._receive_limit = receive_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith("/v3beta/"):
                path = "/v3/" + path[len("/v3beta/") :]
            handler = self._routes.get(path)
            if handler is not None:
                if self._tracing is None:
                    await self._unary(handler, receive, send)
                else:
                    await self._tracing.serve_unary(self._unary, handler, path, scope, receive, send)
                return
            stream = self._streams.get(path)
            if stream is not None:
                await stream(scope, receive, send)
                return
        await self._fallback(scope, receive, send)

    async def _unary(self, handler: UnaryHandler, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(receive, self._max_body_bytes)
            status, payload = 200, await handler(body)
        except EtcdError as error:
            status, payload = error_response(error)
        except LogError as error:
            status, payload = error_response(from_log_error(error))
        except BodyTooLarge as exc:
            status, payload = error_response(MessageTooLarge(exc.size, self._receive_limit))
        except RecursionError:
            status, payload = error_response(DecodeError("exceeded max depth"))
        await send_json(send, status, payload)


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; past `limit` bytes the rest is drained and BodyTooLarge raised."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge(len(body))
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise BodyTooLarge(size)
    return b"".join(chunks)


async def send_json(send: Send, status: int, payload: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(payload)).encode()), *CORS_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": payload})
