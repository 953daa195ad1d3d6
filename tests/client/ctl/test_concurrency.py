"""elect and lock as processes: who holds what, exec mode, and a clean release on SIGTERM."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from corral.client import Client

from tests.client.ctl.conftest import CTL, Ctl, Process, run_process
from tests.support.servers import ServerProcess

Start = Callable[..., Process]


def _keys(url: str, prefix: str) -> list[bytes]:
    with Client(url) as client:
        return [kv.key for kv in client.get(prefix, prefix=True).kvs]


def test_lock_runs_a_command_while_holding_the_lock(server: ServerProcess, prefix: str) -> None:
    script = 'echo "$ETCD_LOCK_KEY $ETCD_LOCK_REV $CORRAL_LOCK_KEY $CORRAL_LOCK_REV"'
    got = run_process([*CTL, "--endpoints", server.url, "lock", f"{prefix}lk", "--", "sh", "-c", script])
    assert got.code == 0 and got.err == "", got
    key, rev, corral_key, corral_rev = got.out.split()
    assert re.fullmatch(rf"{prefix}lk/[0-9a-f]+", key) and (key, rev) == (corral_key, corral_rev)
    assert int(rev) > 0
    assert _keys(server.url, f"{prefix}lk/") == []  # released when the command ended
    failed = run_process([*CTL, "--endpoints", server.url, "lock", f"{prefix}lk", "--", "sh", "-c", "exit 3"])
    assert (failed.code, failed.err) == (1, "Error: exit status 3\n")
    assert _keys(server.url, f"{prefix}lk/") == []


def test_lock_is_held_until_terminated(server: ServerProcess, prefix: str, processes: Start) -> None:
    ep = [*CTL, "--endpoints", server.url]
    holder = processes([*ep, "lock", f"{prefix}lk"])
    key, blank = holder.lines(2)
    assert re.fullmatch(rf"{prefix}lk/[0-9a-f]+", key) and blank == ""
    waiter = processes([*ep, "lock", f"{prefix}lk", "--", "echo", "got it"])
    assert waiter.no_more_lines(0.5)  # blocked behind the holder
    assert holder.stop() == 0
    assert waiter.lines(1) == ["got it"]
    assert waiter.proc.wait(10) == 0
    assert _keys(server.url, f"{prefix}lk/") == []
    with Client(server.url) as client:
        lease_id = int(key.rsplit("/", 1)[1], 16)
        assert client.lease_time_to_live(lease_id).ttl == -1  # the holder revoked its lease


def test_lock_json(server: ServerProcess, prefix: str, processes: Start) -> None:
    holder = processes([*CTL, "--endpoints", server.url, "-w", "json", "lock", f"{prefix}lk"])
    data = json.loads(holder.lines(1)[0])
    (kv,) = data["kvs"]
    assert data["count"] == 1 and kv["lease"] > 0 and "value" not in kv
    assert holder.stop() == 0


def test_elect_and_observe(server: ServerProcess, prefix: str, processes: Start) -> None:
    ep = [*CTL, "--endpoints", server.url]
    name = f"{prefix}el"
    observer = processes([*ep, "elect", "-l", name])
    first = processes([*ep, "elect", name, "p1"])
    leader_key, proposal = first.lines(2)
    assert re.fullmatch(rf"{name}/[0-9a-f]+", leader_key) and proposal == "p1"
    assert observer.lines(2) == [leader_key, "p1"]
    second = processes([*ep, "elect", name, "p2"])
    assert second.no_more_lines(0.5)  # a candidate waits while another leads
    assert first.stop() == 0  # resigns
    next_key, next_proposal = second.lines(2)
    assert next_key != leader_key and next_proposal == "p2"
    assert observer.lines(2) == [next_key, "p2"]
    assert second.stop() == 0
    assert _keys(server.url, f"{name}/") == []


def test_elect_fields(server: ServerProcess, prefix: str, processes: Start) -> None:
    leader = processes([*CTL, "--endpoints", server.url, "elect", f"{prefix}el", "v", "-w", "fields"])
    lines = leader.lines(12)
    assert lines[4].startswith(f'"Key" : "{prefix}el/') and lines[8:] == [
        '"Value" : "v"',
        lines[9],
        '"More" : false',
        '"Count" : 1',
    ]
    assert leader.stop() == 0


def test_usage(ctl: Ctl) -> None:
    assert ctl("elect") == (
        128,
        "",
        "Error: elect takes one election name argument and an optional proposal argument\n",
    )
    assert ctl("elect", "x") == (128, "", "Error: no proposal argument but -l not set\n")
    assert ctl("elect", "-l", "x", "p") == (128, "", "Error: proposal given but -l is set\n")
    assert ctl("lock") == (128, "", "Error: lock takes a lock name argument and an optional command to execute\n")
    assert ctl("lock", "x", "-w", "table").code == 4
