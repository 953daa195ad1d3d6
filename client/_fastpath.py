"""A lean HTTP/1.1 keep-alive pool for the async client's unary POSTs.

Why not httpx here: measured on the 2-core benchmark machine, httpx plus httpcore's pool cost ~100 µs
of CPU per call before any I/O, and httpcore's pool walks every connection on each request, so 32
outstanding puts per process ran at ~500/s. A unary call needs far less: write one request, parse one
response (httptools, the parser uvicorn uses), keep the connection for the next call. Streams (watch,
keep-alive, snapshot) and any user-supplied transport still go through httpx. The blocking client
has the same problem with threads (1.5k puts/s at 32 threads), hence `BlockingUnaryPool`.
"""

from __future__ import annotations

import asyncio
import http.client
import select
import socket
import threading
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["BlockingUnaryPool", "NotSent", "UnaryPool"]


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("connection closed by the server"))

    # -- httptools callbacks ---------------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._parser.get_status_code(), b"".join(self._body)))

    # -- use -------------------------------------------------------------------------------------------

    async def exchange(self, request: bytes, timeout: float) -> tuple[int, bytes]:
        assert self.transport is not None
        self._body = []
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        self._waiter = waiter
        self.transport.write(request)
        timer = loop.call_later(timeout, self._fail, TimeoutError(f"no answer within {timeout} s"))
        try:
            return await waiter
        finally:
            timer.cancel()

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class NotSent(ConnectionError):
    """The connection could not be made: the request never left."""


class UnaryPool:
    """Keep-alive connections per origin; `post()` returns (status, body)."""

    def __init__(self, timeout: float, max_idle: int = 64) -> None:
        self._timeout = timeout
        self._max_idle = max_idle
        self._idle: dict[str, deque[_Connection]] = {}
        self._heads: dict[str, bytes] = {}

    async def post(
        self, url: str, path: str, content: bytes, extra_headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        head = self._heads.get(url)
        if head is None:
            head = self._heads[url] = f"Host: {urlsplit(url).netloc}\r\nContent-Type: application/json\r\n".encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in extra_headers.items()).encode() if extra_headers else b""
        request = b"POST %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n%s" % (
            path.encode(),
            head,
            extra,
            len(content),
            content,
        )
        connection = await self._checkout(url)
        try:
            status, body = await connection.exchange(request, self._timeout)
        except BaseException:
            connection.close()
            raise
        self._checkin(url, connection)
        return status, body

    async def _checkout(self, url: str) -> _Connection:
        idle = self._idle.get(url)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(_Connection, parts.hostname or "localhost", parts.port or 80), self._timeout
            )
        except (TimeoutError, OSError) as exc:
            raise NotSent(f"{url}: {exc or type(exc).__name__}") from exc
        return protocol

    def _checkin(self, url: str, connection: _Connection) -> None:
        idle = self._idle.setdefault(url, deque())
        if connection.closed or not connection.reusable or len(idle) >= self._max_idle:
            connection.close()
        else:
            idle.append(connection)

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


class BlockingUnaryPool:
    """The blocking twin: one keep-alive `http.client` connection per thread and origin.

    A connection the server has closed while idle (its keep-alive timeout) is noticed before reuse, by
    polling its socket, so a request is never written into a dead connection.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def post(
        self, url: str, path: str, content: bytes, extra_headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        connection = self._connection(url)
        headers = {"Content-Type": "application/json", **(extra_headers or {})}
        try:
            connection.request("POST", path, body=content, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except BaseException:
            self._discard(url, connection)
            raise
        if response.will_close:
            self._discard(url, connection)
        return response.status, body

    def _connection(self, url: str) -> http.client.HTTPConnection:
        connections: dict[str, http.client.HTTPConnection] | None = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        connection = connections.get(url)
        if connection is not None and connection.sock is not None and _readable(connection.sock):
            self._discard(url, connection)  # closed by the server while idle (or out of step): start afresh
            connection = None
        if connection is None:
            parts = urlsplit(url)
            host, port = parts.hostname or "localhost", parts.port or 80
            connection = http.client.HTTPConnection(host, port, timeout=self._timeout)
            connections[url] = connection
            with self._lock:
                self._all.append(connection)
        if connection.sock is None:
            try:
                connection.connect()
            except OSError as exc:
                self._discard(url, connection)
                raise NotSent(f"{url}: {exc}") from exc
            sock = cast(socket.socket, connection.sock)  # set by connect()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _discard(self, url: str, connection: http.client.HTTPConnection) -> None:
        connection.close()
        getattr(self._local, "connections", {}).pop(url, None)
        with self._lock:
            if connection in self._all:
                self._all.remove(connection)

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()


def _readable(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)
