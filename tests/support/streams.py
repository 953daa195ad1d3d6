"""A streaming HTTP/1.1 client on a raw socket, for etcd's gateway streams (`/v3/watch`, keepalive).

`Stream.open(url, path, requests)` POSTs `requests` (JSON objects, concatenated) as the whole body;
`Stream.open(url, path, requests, end=False)` sends them as the first chunk of a chunked body, and
`send()` / `end()` add more later. A reader thread collects each `{"result": ...}` line as it arrives;
`wait_for`, `wait_quiet` and `close` bound every wait.

Why not httpx: it sends the whole request body before it reads any of the response, and a reader
blocked in `iter_lines` cannot be woken from another thread. Here `close()` shuts the socket down.

What etcd 3.4.23's gateway does with a streamed request body (Go's HTTP/1.1 server), as seen from here:
requests in later chunks are acted on as they arrive, but no byte of the response goes out before the
request body has ended; and request objects that its JSON decoder had not read (512 bytes at a time) when
the first answer was ready are sometimes lost (most likely Go's server discarding the unread body as it
starts the response). A chunk sent after an earlier one was answered was seen lost, and so was the last
object of a ~700-byte body sent whole. Differential tests against etcd therefore send each watch stream's
requests as one complete body of at most ~500 bytes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

Json = Any


class StreamError(AssertionError):
    pass


class Stream:
    """One streaming POST and the messages it got back (each the `result` of a line)."""

    def __init__(self, sock: socket.socket, chunked: bool) -> None:
        self._sock = sock
        self._chunked = chunked
        self._cond = threading.Condition()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.results: list[Json] = []  # the `result` of each line, in arrival order
        self.arrivals: list[float] = []  # time.monotonic() of each result
        self.other: list[Json] = []  # lines without a `result` (a final `error`), or a unary body
        self.eof = False  # the server ended the response (or the connection)
        self.failure: BaseException | None = None
        self._closing = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- opening and sending ----------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str, path: str, requests: list[Json] | None = None, *, end: bool = True, timeout: float = 5.0
    ) -> Stream:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.settimeout(None)
        body = request_body(requests or [])
        head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        if end:
            sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        else:
            sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + (_chunk(body) if body else b""))
        return cls(sock, chunked=not end)

    def send(self, *requests: Json) -> None:
        """More request objects, as one chunk (only for a stream opened with `end=False`)."""
        assert self._chunked, "the request body was sent whole"
        self._sock.sendall(_chunk(request_body(list(requests))))

    def end(self, *requests: Json) -> None:
        """The last request objects (if any) and the end of the request body, in one send."""
        assert self._chunked, "the request body was sent whole"
        self._sock.sendall((_chunk(request_body(list(requests))) if requests else b"") + b"0\r\n\r\n")
        self._chunked = False

    # -- waiting ----------------------------------------------------------------------------------

    def snapshot(self) -> list[Json]:
        with self._cond:
            return list(self.results)

    def wait_for(self, predicate: Callable[[list[Json]], bool], timeout: float, what: str = "") -> list[Json]:
        """Wait until `predicate(results)` holds; fail after `timeout` seconds (or if the stream ended)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.results):
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise StreamError(
                        f"stream: {what or 'condition'} not met after {timeout}s (eof={self.eof}, "
                        f"status={self.status}, failure={self.failure!r}); last results: "
                        f"{json.dumps(self.results[-5:])[:3000]} other: {self.other[-3:]}"
                    )
                self._cond.wait(min(left, 0.1))
            return list(self.results)

    def wait_count(self, n: int, timeout: float) -> list[Json]:
        return self.wait_for(lambda results: len(results) >= n, timeout, f"{n} results")

    def wait_quiet(self, period: float, timeout: float) -> list[Json]:
        """Wait until no result has arrived for `period` seconds (at most `timeout` seconds in all)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                last = self.arrivals[-1] if self.arrivals else 0.0
                now = time.monotonic()
                if now - last >= period or self.eof:
                    return list(self.results)
                if now >= deadline:
                    raise StreamError(f"stream: still receiving after {timeout}s ({len(self.results)} results)")
                self._cond.wait(min(period - (now - last), deadline - now))

    def wait_eof(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StreamError(f"stream: the server did not end the response within {timeout}s")
                self._cond.wait(min(left, 0.1))

    def close(self) -> None:
        self._closing = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(5.0)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the reader thread ------------------------------------------------------------------------

    def _read(self) -> None:
        reader = _Reader(self._sock)
        try:
            status_line = reader.line()
            if not status_line:
                return
            self.status = int(status_line.split()[1])
            while line := reader.line():
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                pending = b""
                while True:
                    size_line = reader.line()
                    size = int(size_line.split(";")[0], 16)
                    if size == 0:
                        break
                    pending += reader.exact(size)
                    reader.exact(2)
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        self._add(raw)
                if pending.strip():
                    self._add(pending)
            else:
                length = self.headers.get("content-length")
                data = reader.exact(int(length)) if length is not None else reader.rest()
                for raw in data.split(b"\n"):
                    self._add(raw)
        except (OSError, ValueError, EOFError) as exc:
            if not self._closing and not isinstance(exc, EOFError):
                self.failure = exc
        finally:
            with self._cond:
                self.eof = True
                self._cond.notify_all()

    def _add(self, raw: bytes) -> None:
        if not raw.strip():
            return
        try:
            value = json.loads(raw)
        except ValueError:
            value = {"<not json>": raw.decode("utf-8", "replace")}
        with self._cond:
            if isinstance(value, dict) and set(value) == {"result"}:
                self.results.append(value["result"])
                self.arrivals.append(time.monotonic())
            else:
                self.other.append(value)
            self._cond.notify_all()


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _fill(self) -> None:
        data = self._sock.recv(65536)
        if not data:
            raise EOFError
        self._buffer += data

    def line(self) -> str:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line.decode("latin-1")

    def exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def rest(self) -> bytes:
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        data, self._buffer = self._buffer, b""
        return data


def request_body(requests: list[Json]) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":")).encode() for r in requests)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)
