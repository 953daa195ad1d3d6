"""Controller election: the epoch grows by exactly one per change of controller, and a stale controller,
even a paused process that wakes up believing it still leads, cannot write through the fence."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from corral.client import AsyncClient, Client
from corral.client import txn as t
from corral.client.recipes.controller import AsyncControllerElection, ControllerElection, FencedError
from corral.client.recipes.election import NotLeader

from tests.support.servers import REPO_ROOT, ServerProcess


def test_epoch_grows_by_one_per_change_of_controller(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            name = prefix + "ctl"
            c1 = AsyncControllerElection(client, name, ttl=5, identifier="c1")
            c2 = AsyncControllerElection(client, name, ttl=5, identifier="c2")
            assert await c1.current_epoch() == 0 and await c1.controller() is None
            assert await c1.campaign() == 1 and c1.epoch == 1
            waiting = asyncio.create_task(c2.campaign())
            await asyncio.sleep(0.3)
            assert not waiting.done() and await c2.current_epoch() == 1
            await c1.resign()
            assert await asyncio.wait_for(waiting, 5) == 2 and c1.epoch is None
            again = asyncio.create_task(c1.campaign())
            await asyncio.sleep(0.3)
            await c2.resign()
            assert await asyncio.wait_for(again, 5) == 3
            controller = await c2.controller()
            assert controller is not None and controller.value == b"c1"
            assert c1.fencing_token == controller.create_revision
            assert (await client.get(c1.epoch_key)).value == b"3"
            assert await c1.is_controller() and not await c2.is_controller()
            # the epoch key's history: exactly 1, 2, 3, one write each
            assert (await client.get(c1.epoch_key)).first.version == 3  # type: ignore[union-attr]
            await c1.resign()

    asyncio.run(scenario())


def test_fenced_writes(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        name = prefix + "ctl"
        controller = ControllerElection(client, name, ttl=5, identifier="a")
        with pytest.raises(FencedError):
            controller.fenced_put(prefix + "decision", "x")  # never campaigned
        epoch = controller.campaign()
        put = controller.fenced_put(prefix + "decision", "a", prev_kv=True)
        assert put.prev_kv is None and client.get(prefix + "decision").value == b"a"
        # the caller's own compare failing is not fencing: the failure branch runs
        result = controller.fenced_txn(
            [t.value(prefix + "decision") == "zzz"], [t.put(prefix + "decision", "no")], [t.get(prefix + "decision")]
        )
        assert not result.succeeded and result.responses[0].first.value == b"a"  # type: ignore[union-attr]
        assert controller.fenced_delete(prefix + "decision").deleted == 1

        client.lease_revoke(controller.lease_id)  # the controller's session ends under it
        with pytest.raises(FencedError) as fenced:
            controller.fenced_txn([], [t.put(prefix + "decision", "stale")], [t.put(prefix + "other", "stale")])
        assert isinstance(fenced.value, NotLeader) and fenced.value.epoch == epoch
        assert fenced.value.current_epoch == epoch
        assert client.get(prefix + "decision").kvs == [] and client.get(prefix + "other").kvs == []
        assert controller.lost.wait(5) and not controller.is_controller()
        controller.resign()


_PAUSED_CONTROLLER = textwrap.dedent(
    """
    import sys
    from corral.client import Client
    from corral.client.recipes.controller import ControllerElection, FencedError

    url, name, decision = sys.argv[1:4]
    with Client(url, timeout=5.0) as client:
        controller = ControllerElection(client, name, ttl=1, identifier="old")
        epoch = controller.campaign(timeout=20)
        controller.fenced_put(decision, f"old-{epoch}")
        print("LEADER", epoch, flush=True)
        sys.stdin.readline()  # paused (SIGSTOP) around here; told to go on after SIGCONT
        try:
            controller.fenced_put(decision, "stale")
        except FencedError as exc:
            print("FENCED", exc.epoch, exc.current_epoch, flush=True)
        else:
            print("WROTE", flush=True)
    """
)


def test_paused_controller_is_fenced(server: ServerProcess, prefix: str) -> None:
    """A controller process is stopped (SIGSTOP) until its 1 s lease expires; another controller takes
    over with epoch + 1 and decides; the old one is continued (SIGCONT) and its next write is refused."""
    name, decision = prefix + "ctl", prefix + "decision"
    proc = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_CONTROLLER, server.url, name, decision],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        leader_line = proc.stdout.readline().split()
        assert leader_line[0] == "LEADER", leader_line
        old_epoch = int(leader_line[1])
        os.kill(proc.pid, signal.SIGSTOP)
        with Client(server.url) as client:
            assert client.get(decision).value == f"old-{old_epoch}".encode()
            new = ControllerElection(client, name, ttl=5, identifier="new")
            assert new.campaign(timeout=20) == old_epoch + 1  # won once the paused one's lease expired
            new.fenced_put(decision, "new")
            os.kill(proc.pid, signal.SIGCONT)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            verdict = proc.stdout.readline().split()
            assert verdict == ["FENCED", str(old_epoch), str(old_epoch + 1)], verdict
            assert proc.wait(20) == 0
            assert client.get(decision).value == b"new"
            assert new.is_controller() and new.current_epoch() == old_epoch + 1
            new.resign()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(10)
