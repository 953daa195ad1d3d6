"""Fixtures shared by the multi-process tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ServerProcess, corral_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """A three-member Corral cluster on loopback, every member answering /health; killed afterwards."""
    members = corral_cluster(tmp_path, 3)
    for member in members:
        member.spawn()
    try:
        for member in members:
            member.wait_healthy(30.0)
        yield members
    finally:
        for member in members:
            member.kill()
