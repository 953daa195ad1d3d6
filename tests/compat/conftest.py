"""Servers for the etcd differential tests: one etcd and one Corral per session, on free loopback ports.

`fresh_pair` gives both with empty stores (revision 1), restarting them on empty data directories when an
earlier test used them, because revision numbers must line up between the two.

`CORRAL_DIFF_TARGET=etcd` puts a second etcd where Corral would be: etcd against etcd must match exactly,
which checks the generator and the normalizer themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.compat.harness import remove, restart_empty
from tests.support.servers import ServerProcess, corral_process, etcd_binary, etcd_process

NO_ETCD = (
    "no etcd binary on PATH: the differential tests compare Corral with a real etcd 3.4 "
    "(`make deps` installs Debian's etcd-server)"
)

_used: set[int] = set()


def _serve(server: ServerProcess) -> Iterator[ServerProcess]:
    try:
        server.start()
        yield server
    finally:
        remove(server)


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if etcd_binary() is None:
        pytest.skip(NO_ETCD)
    yield from _serve(etcd_process(tmp_path_factory.mktemp("etcd") / "data"))


@pytest.fixture(scope="session")
def corral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("corral") / "data"
    if os.environ.get("CORRAL_DIFF_TARGET") == "etcd":
        if etcd_binary() is None:
            pytest.skip(NO_ETCD)
        yield from _serve(etcd_process(data_dir))
    else:
        yield from _serve(corral_process(data_dir))


@pytest.fixture
def fresh_pair(etcd: ServerProcess, corral: ServerProcess) -> tuple[ServerProcess, ServerProcess]:
    """(etcd, corral), both with empty stores (restarted side by side when an earlier test used them)."""
    restart_empty(*(server for server in (etcd, corral) if id(server) in _used))
    _used.update((id(etcd), id(corral)))
    return etcd, corral
