"""Real Corral processes for the HTTP API tests, each on a free loopback port with its own data dir.

`server` runs with default limits for the whole session; `small_server` runs with etcd's reference
capture limits (`--max-request-bytes 2048 --max-txn-ops 4`) so the limits are easy to hit. Every
client the fixtures hand out fails the test at once on a 5xx answer: no request, however malformed,
may make the server answer with an internal error.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import ServerProcess, corral_process, running

SMALL_LIMITS = ["--max-request-bytes", "2048", "--max-txn-ops", "4"]
CLIENT_TIMEOUT = httpx.Timeout(15.0)


def _no_server_errors(response: httpx.Response) -> None:
    if response.status_code >= 500:
        response.read()
        request = response.request
        status, text = response.status_code, response.text
        raise AssertionError(f"{request.method} {request.url.path} -> {status}: {text!r}")


def make_client(server: ServerProcess) -> httpx.Client:
    """A client for `server` that raises AssertionError on any 5xx response."""
    hooks = {"response": [_no_server_errors]}
    return httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT, event_hooks=hooks)


def _serve(directory: Path, extra: list[str] | None = None) -> Iterator[ServerProcess]:
    try:
        with running(corral_process(directory / "data", extra=extra)) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One Corral with default limits, shared by the session (tests use their own keys)."""
    yield from _serve(tmp_path_factory.mktemp("corral-api"))


@pytest.fixture(scope="session")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One Corral with `--max-request-bytes 2048 --max-txn-ops 4`."""
    yield from _serve(tmp_path_factory.mktemp("corral-api-small"), SMALL_LIMITS)


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A Corral of its own, on an empty data dir (revision 1), for tests that compact or count revisions."""
    yield from _serve(tmp_path)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with make_client(server) as c:
        yield c


@pytest.fixture
def small_client(small_server: ServerProcess) -> Iterator[httpx.Client]:
    with make_client(small_server) as c:
        yield c


@pytest.fixture
def fresh_client(fresh_server: ServerProcess) -> Iterator[httpx.Client]:
    with make_client(fresh_server) as c:
        yield c


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> Callable[[str], bytes]:
    """Keys private to this test on the shared servers: ns("a") -> b"<test id>/a"."""
    prefix = request.node.nodeid.rsplit("::", 1)[-1]
    return lambda name="": f"{prefix}/{name}".encode()
