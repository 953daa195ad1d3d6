"""watch as a process: events printed as they come (simple, json, fields), exec mode, compaction, usage."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

from corral.client import Client
from corral.client import txn as t

from tests.client.ctl.conftest import CTL, Ctl, Process
from tests.support.servers import ServerProcess

Start = Callable[..., Process]


def test_watch_prints_each_event(server: ServerProcess, prefix: str, processes: Start) -> None:
    with Client(server.url) as client:
        start = client.put(f"{prefix}marker", "").revision
        watcher = processes(
            [*CTL, "--endpoints", server.url, "watch", "--prefix", f"{prefix}w", "--rev", str(start + 1)]
        )
        client.put(f"{prefix}w1", "a")
        assert watcher.lines(3) == ["PUT", f"{prefix}w1", "a"]  # printed before the next change is made
        client.put(f"{prefix}w1", "b")
        client.delete(f"{prefix}w1")
        client.put(f"{prefix}other", "not watched")
        client.txn([], [t.put(f"{prefix}w1", "x"), t.put(f"{prefix}w2", "two words")])
        assert watcher.lines(12) == [
            "PUT",
            f"{prefix}w1",
            "b",
            "DELETE",
            f"{prefix}w1",
            "",
            "PUT",
            f"{prefix}w1",
            "x",
            "PUT",
            f"{prefix}w2",
            "two words",
        ]
        assert watcher.no_more_lines()
    assert watcher.stop() != 0  # killed by SIGTERM, as etcdctl is


def test_watch_registers_before_any_output(server: ServerProcess, prefix: str, processes: Start) -> None:
    """Without --rev the watch starts at the current revision: changes made once it runs all arrive."""
    watcher = processes([*CTL, "--endpoints", server.url, "watch", f"{prefix}k"])
    with Client(server.url) as client:
        deadline = time.monotonic() + 10
        first: list[str] = []
        while not first and time.monotonic() < deadline:
            client.put(f"{prefix}k", "probe")
            try:
                first = watcher.lines(3, timeout=0.3)
            except AssertionError:
                first = []
        assert first == ["PUT", f"{prefix}k", "probe"]
        client.put(f"{prefix}k", "after")
        lines = watcher.lines(3)
        while lines == ["PUT", f"{prefix}k", "probe"]:
            lines = watcher.lines(3)
        assert lines == ["PUT", f"{prefix}k", "after"]


def test_watch_prev_kv_and_formats(server: ServerProcess, prefix: str, processes: Start) -> None:
    """One change at a time (a replay from history may put several revisions in one message)."""
    ep = [*CTL, "--endpoints", server.url]
    with Client(server.url) as client:
        start = client.put(f"{prefix}marker", "").revision
        since = ["--rev", str(start + 1)]
        simple = processes([*ep, "watch", f"{prefix}w1", "--prev-kv", *since])
        as_json = processes([*ep, "-w", "json", "watch", f"{prefix}w1", f"{prefix}w3", *since])
        fields = processes([*ep, "watch", f"{prefix}w1", *since, "-w", "fields"])
        h = client.put(f"{prefix}w1", "a").header
        assert simple.lines(3) == ["PUT", f"{prefix}w1", "a"]
        assert fields.lines(11) == [
            f'"ClusterID" : {h.cluster_id}',
            f'"MemberID" : {h.member_id}',
            f'"Revision" : {start + 1}',
            f'"RaftTerm" : {h.raft_term}',
            '"Type" : PUT',
            f'"Key" : "{prefix}w1"',
            f'"CreateRevision" : {start + 1}',
            f'"ModRevision" : {start + 1}',
            '"Version" : 1',
            '"Value" : "a"',
            '"Lease" : 0',
        ]
        messages = [json.loads(as_json.lines(1)[0])]
        client.put(f"{prefix}w1", "b")
        assert simple.lines(5) == ["PUT", f"{prefix}w1", "a", f"{prefix}w1", "b"]
        assert fields.lines(11)[-2:] == ['"Value" : "b"', '"Lease" : 0']
        messages.append(json.loads(as_json.lines(1)[0]))
        client.delete(f"{prefix}w1")
        assert simple.lines(5) == ["DELETE", f"{prefix}w1", "b", f"{prefix}w1", ""]
        messages.append(json.loads(as_json.lines(1)[0]))
        client.txn([], [t.put(f"{prefix}w1", "x"), t.put(f"{prefix}w2", "two words")])
        assert simple.lines(3) == ["PUT", f"{prefix}w1", "x"]
        messages.append(json.loads(as_json.lines(1)[0]))
        assert [m["Header"]["revision"] for m in messages] == [start + 1, start + 2, start + 3, start + 4]
        assert [len(m["Events"]) for m in messages] == [1, 1, 1, 2]
        assert messages[2]["Events"] == [{"type": 1, "kv": {"key": _b64(f"{prefix}w1"), "mod_revision": start + 3}}]
        assert messages[0]["Events"] == [
            {
                "kv": {
                    "key": _b64(f"{prefix}w1"),
                    "create_revision": start + 1,
                    "mod_revision": start + 1,
                    "version": 1,
                    "value": _b64("a"),
                }
            }
        ]
        assert list(messages[0]) == ["Header", "Events", "CompactRevision", "Canceled", "Created"]
        assert (messages[0]["CompactRevision"], messages[0]["Canceled"], messages[0]["Created"]) == (0, False, False)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_watch_exec_mode(server: ServerProcess, prefix: str, processes: Start) -> None:
    script = (
        'echo "EXEC $ETCD_WATCH_REVISION $ETCD_WATCH_KEY $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_VALUE $CORRAL_WATCH_KEY"'
    )
    with Client(server.url) as client:
        start = client.put(f"{prefix}marker", "").revision
        watcher = processes(
            [
                *CTL,
                "--endpoints",
                server.url,
                "watch",
                "--prefix",
                f"{prefix}w",
                "--rev",
                str(start + 1),
                "--",
                "sh",
                "-c",
                script,
            ]
        )
        client.put(f"{prefix}w1", 'say "hi"')
        assert watcher.lines(4) == [
            "PUT",
            f"{prefix}w1",
            'say "hi"',
            f'EXEC {start + 1} "{prefix}w1" "PUT" "say \\"hi\\"" "{prefix}w1"',
        ]
        client.delete(f"{prefix}w1")
        assert watcher.lines(4) == [
            "DELETE",
            f"{prefix}w1",
            "",
            f'EXEC {start + 2} "{prefix}w1" "DELETE" "" "{prefix}w1"',
        ]
        client.txn([], [t.put(f"{prefix}w1", "x"), t.put(f"{prefix}w2", "two words")])
        assert watcher.lines(8) == [  # the message's events first, then one command per event
            "PUT",
            f"{prefix}w1",
            "x",
            "PUT",
            f"{prefix}w2",
            "two words",
            f'EXEC {start + 3} "{prefix}w1" "PUT" "x" "{prefix}w1"',
            f'EXEC {start + 3} "{prefix}w2" "PUT" "two words" "{prefix}w2"',
        ]


def test_watch_from_a_compacted_revision(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    with Client(server.url) as client:
        client.put(f"{prefix}k", "1")
        client.compact(client.put(f"{prefix}k", "2").revision)
    got = ctl("--endpoints", server.url, "watch", f"{prefix}k", "--rev", "1")
    assert got == (
        5,
        "",
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n"
        "Error: watch is canceled by the server\n",
    )


def test_watch_interactive(server: ServerProcess, prefix: str, processes: Start) -> None:
    watcher = processes([*CTL, "--endpoints", server.url, "watch", "-i"], stdin=True)
    with Client(server.url) as client:
        start = client.put(f"{prefix}marker", "").revision
        watcher.send(f"watch {prefix}a --rev {start + 1}\nbogus\nwatch\n")
        watcher.send(f"watch --prefix {prefix}b --rev {start + 1} -- echo ran\n")
        client.put(f"{prefix}a", "1")
        assert watcher.lines(3) == ["PUT", f"{prefix}a", "1"]
        client.put(f"{prefix}b2", "2")
        assert watcher.lines(4) == ["PUT", f"{prefix}b2", "2", "ran"]
        assert watcher.proc.stdin is not None
        watcher.proc.stdin.close()  # as etcdctl, the end of the commands is an error
        assert watcher.proc.wait(10) == 3
    assert watcher.stderr_now() == (
        "Invalid command bogus (only support watch)\n"
        "Invalid command watch (command type or key is not provided)\n"
        "Error: Error reading watch request line: EOF\n"
    )


def test_watch_usage(ctl: Ctl) -> None:
    assert ctl("watch").code == 128
    assert ctl("watch", "a", "b", "--prefix").code == 128
    assert ctl("watch", "a", "-w", "table") == (4, "", "Error: table not supported as output format\n")
