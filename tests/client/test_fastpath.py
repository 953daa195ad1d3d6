"""The unary connection pools against a server that closes idle keep-alive connections (as uvicorn does
after 5 s): the next call must open a new connection instead of writing into the dead one."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from corral.client import AsyncClient, Client

BODY = b'{"header":{"revision":"3"}}'
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)


@pytest.fixture
def closing_server() -> Iterator[tuple[str, list[int]]]:
    """A server that answers one request per connection, then closes it 0.1 s later without saying so."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    connections: list[int] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            while len(rest) < length:
                rest += conn.recv(65536)
            conn.sendall(RESPONSE)
            time.sleep(0.1)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", connections
    listener.close()


def test_blocking_client_reconnects_after_an_idle_close(closing_server: tuple[str, list[int]]) -> None:
    url, connections = closing_server
    with Client(url) as client:
        for _ in range(3):
            assert client.put("k", "v").revision == 3  # a write: never retried, so it must not fail
            time.sleep(0.3)
    assert len(connections) == 3


def test_async_client_reconnects_after_an_idle_close(closing_server: tuple[str, list[int]]) -> None:
    url, connections = closing_server

    async def scenario() -> None:
        async with AsyncClient(url) as client:
            for _ in range(3):
                assert (await client.put("k", "v")).revision == 3
                await asyncio.sleep(0.3)

    asyncio.run(scenario())
    assert len(connections) == 3
