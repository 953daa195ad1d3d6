"""Servers for the client tests: one Corral and one etcd per session, on free loopback ports.

`server` runs a test against both (the client claims to work against any etcd v3 JSON gateway); tests
isolate themselves with a unique key prefix (`prefix`) rather than fresh stores.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.servers import ServerProcess, corral_process, etcd_binary, etcd_process


@pytest.fixture(scope="session")
def corral_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = corral_process(tmp_path_factory.mktemp("client-corral") / "data")
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if etcd_binary() is None:
        pytest.skip("no etcd binary on PATH (`make deps` installs it)")
    server = etcd_process(tmp_path_factory.mktemp("client-etcd") / "data")
    server.start()
    yield server
    server.kill()


@pytest.fixture(params=["corral", "etcd"])
def server(request: pytest.FixtureRequest) -> ServerProcess:
    """Corral, then etcd: the same test against both."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}/"
