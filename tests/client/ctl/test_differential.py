"""corralctl against etcdctl 3.4: the same commands on the same etcd must print the same thing.

Nothing is normalized except what must differ between two runs: revisions and versions of writes
(each run writes again), lease IDs each run grants, and how long a health check took. etcdctl's
own client log lines on stderr (`{"level":"warn",...}`) are dropped; the `Error:` line must match.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

import pytest
from corral.client import Client

from tests.client.ctl.conftest import CTL, Ctl, Process, Run, etcdctl_binary, run_process
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.skipif(etcdctl_binary() is None, reason="no etcdctl on PATH (Debian's etcd-client)")

Pair = Callable[..., tuple[Run, Run]]
_REVISIONS = re.compile(
    r'("(?:revision|create_revision|mod_revision|version)":)\d+'
    r'|("(?:Prev)?(?:Revision|CreateRevision|ModRevision|Version)" : )\d+'
)


def revisions_out(text: str) -> str:
    return _REVISIONS.sub(lambda m: (m.group(1) or m.group(2)) + "N", text)


def _etcdctl_stderr(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith('{"level"'))


@pytest.fixture
def both(etcd_server: ServerProcess, ctl: Ctl) -> Pair:
    """`both(*args, stdin=b"")`: (etcdctl's run, corralctl's run) of the same command on the same etcd."""
    address = etcd_server.url.removeprefix("http://")

    def run(*args: str, stdin: bytes = b"", setup: Callable[[], None] | None = None) -> tuple[Run, Run]:
        if setup:
            setup()
        env = {**os.environ, "ETCDCTL_API": "3"}
        theirs = run_process(["etcdctl", "--endpoints", address, *args], stdin=stdin, env=env)
        theirs = Run(theirs.code, theirs.out, _etcdctl_stderr(theirs.err))
        if setup:
            setup()
        return theirs, ctl("--endpoints", address, *args, stdin=stdin)

    return run


@pytest.fixture
def data(etcd_server: ServerProcess, prefix: str) -> Iterator[str]:
    """A few keys under `prefix`, some with awkward bytes, and one attached to a lease."""
    with Client(etcd_server.url) as client:
        lease = client.lease_grant(1000).id
        client.put(f"{prefix}a", "1")
        client.put(f"{prefix}b", "two words")
        client.put(f"{prefix}b", "three words now")
        client.put(f"{prefix}c", 'quote " and \\ and \n newline', lease=lease)
        client.put(f"{prefix}d é ✓", b"\xff\x00binary")
        yield prefix
        client.lease_revoke(lease)


READS = [
    ["get", "{p}a"],
    ["get", "{p}missing"],
    ["get", "{p}", "--prefix"],
    ["get", "{p}a", "{p}c"],
    ["get", "{p}", "--prefix", "--keys-only"],
    ["get", "{p}", "--prefix", "--print-value-only"],
    ["get", "{p}", "--prefix", "--limit", "2", "-w", "json"],
    ["get", "{p}", "--prefix", "--sort-by=VALUE", "--order=DESCEND"],
    ["get", "{p}", "--prefix", "--sort-by=MODIFY", "--order=ASCEND", "-w", "json"],
    ["get", "{p}", "--prefix", "--sort-by=version"],
    ["get", "{p}", "--prefix", "-w", "json"],
    ["get", "{p}", "--prefix", "-w", "fields"],
    ["get", "{p}missing", "-w", "json"],
    ["get", "{p}missing", "-w", "fields"],
    ["get", "{p}", "--prefix", "--hex"],
    ["get", "{p}b", "--from-key", "--limit", "3", "--keys-only"],
    ["get", "{p}a", "--consistency=s"],
    ["get", "{p}b", "--rev", "{rev}"],
    ["get", "{p}", "--prefix", "--keys-only", "--print-value-only"],
    ["--hex", "get", "{p}d", "--prefix", "-w", "fields"],
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_reads(both: Pair, data: str, etcd_server: ServerProcess, args: list[str]) -> None:
    with Client(etcd_server.url) as client:
        rev = client.get(f"{data}b").kvs[0].create_revision
    theirs, ours = both(*[a.format(p=data, rev=rev) for a in args])
    assert ours == theirs


ERRORS = [
    ["get"],
    ["get", "a", "--prefix", "--from-key"],
    ["get", "a", "b", "--prefix"],
    ["get", "a", "--sort-by=BAD"],
    ["get", "a", "--order=bad"],
    ["get", "a", "--consistency=x"],
    ["get", "a", "-w", "table"],
    ["get", "a", "--rev", "99999999"],
    ["put"],
    ["put", "a", "b", "--ignore-value"],
    ["put", "a", "b", "--lease", "1234"],
    ["del"],
    ["del", "a", "b", "--from-key"],
    ["compaction"],
    ["compaction", "99999999"],
    ["lease", "grant"],
    ["lease", "revoke"],
    ["lease", "revoke", "1234"],
    ["lease", "timetolive"],
    ["lease", "keep-alive"],
    ["lease", "keep-alive", "--once", "1234"],
    ["lease", "grant", "10", "-w", "table"],
    ["member", "add"],
    ["member", "add", "x"],
    ["member", "add", "x", "y", "--peer-urls=http://127.0.0.1:1"],
    ["member", "remove"],
    ["member", "update", "1"],
    ["move-leader"],
    ["move-leader", "123"],
    ["snapshot", "save"],
    ["watch"],
    ["watch", "a", "b", "--prefix"],
    ["elect"],
    ["elect", "x"],
    ["elect", "-l", "x", "p"],
    ["lock"],
]


@pytest.mark.parametrize("args", ERRORS, ids=[" ".join(a) for a in ERRORS])
def test_errors(both: Pair, args: list[str]) -> None:
    theirs, ours = both(*args)
    assert theirs.code != 0 and ours == theirs


TXNS = [
    'mod("{p}a") > "0"\nvalue("{p}a") = "1"\n\nput {p}res ok\nget {p}a\ndel {p}gone\n\nput {p}res fail\n\n',
    'value("{p}a") = "nope"\n\nput {p}res ok\n\nput {p}res fail\nget {p}b\n\n',
    'version("{p}b") = "2"\ncreate("{p}a") > "0"\nm("{p}a") < "99999999"\nval("{p}a") != "x"\n\n'
    "get {p} --prefix --keys-only\n\n\n",
    '\nput "{p}sp ace" "v v" --prev-kv\nget {p}s --prefix\ndel {p}sp --prefix --prev-kv\n\n\n',
    'bogus("{p}a") > "0"\n\n\n\n',
    'mod("{p}a") > "zz"\n\n\n\n',
    "\nfrob a\n\n\n",
]


@pytest.mark.parametrize("fmt", ["simple", "json", "fields"])
@pytest.mark.parametrize("script", TXNS, ids=[f"txn{i}" for i in range(len(TXNS))])
def test_txn(both: Pair, data: str, etcd_server: ServerProcess, script: str, fmt: str) -> None:
    def setup() -> None:
        with Client(etcd_server.url) as client:
            client.delete(f"{data}s", prefix=True)
            client.delete(f"{data}res")

    text = script.format(p=data).encode()
    theirs, ours = both("txn", "-w", fmt, stdin=text, setup=setup)
    assert (ours.code, revisions_out(ours.out), ours.err) == (theirs.code, revisions_out(theirs.out), theirs.err)
    interactive = both("txn", "-i", stdin=text, setup=setup)
    assert interactive[1].out == interactive[0].out


WRITES = [
    ["put", "{p}w", "new"],
    ["put", "{p}w", "new", "--prev-kv"],
    ["put", "{p}w", "new", "--prev-kv", "-w", "json"],
    ["put", "{p}w", "new", "--prev-kv", "-w", "fields"],
    ["put", "{p}w", "--ignore-value", "--prev-kv"],
    ["put", "{p}fresh", "new", "-w", "json"],
    ["del", "{p}w"],
    ["del", "{p}w", "--prev-kv"],
    ["del", "{p}", "--prefix", "--prev-kv", "-w", "json"],
    ["del", "{p}w", "{p}x", "--prev-kv", "-w", "fields"],
    ["del", "{p}nothing", "-w", "json"],
]


@pytest.mark.parametrize("args", WRITES, ids=[" ".join(a) for a in WRITES])
def test_writes(both: Pair, etcd_server: ServerProcess, prefix: str, args: list[str]) -> None:
    def setup() -> None:
        with Client(etcd_server.url) as client:
            client.delete(prefix, prefix=True)
            client.put(f"{prefix}w", "old")
            client.put(f"{prefix}w2", "other")

    theirs, ours = both(*[a.format(p=prefix) for a in args], setup=setup)
    assert (ours.code, revisions_out(ours.out), ours.err) == (theirs.code, revisions_out(theirs.out), theirs.err)


def test_put_from_stdin(both: Pair, etcd_server: ServerProcess, prefix: str) -> None:
    theirs, ours = both("put", f"{prefix}k", stdin=b"line one\nline two\n")
    assert ours == theirs == (0, "OK\n", "")
    with Client(etcd_server.url) as client:
        assert client.get(f"{prefix}k").value == b"line one\nline two\n"


_LEASE_ID = re.compile(r"\b[0-9a-f]{16}\b|(?<=\"ID\":)\d+|(?<=\"ID\" : )\d+|(?<=\"id\":)\d+")


def test_leases(both: Pair, etcd_server: ServerProcess, prefix: str) -> None:
    def ids_out(text: str) -> str:
        return revisions_out(_LEASE_ID.sub("ID", text))

    for fmt in ("simple", "json", "fields"):
        theirs, ours = both("lease", "grant", "100", "-w", fmt)
        assert (ours.code, ids_out(ours.out)) == (theirs.code, ids_out(theirs.out))
        with Client(etcd_server.url) as client:
            for lease_id in client.leases():
                info = client.lease_time_to_live(lease_id)
                if info.granted_ttl == 100:
                    client.lease_revoke(lease_id)
    with Client(etcd_server.url) as client:
        lease = client.lease_grant(1000).id
        client.put(f"{prefix}k1", "v", lease=lease)  # one key: etcd lists several in no fixed order
        try:
            for args in (
                ["timetolive", f"{lease:x}"],
                ["timetolive", f"{lease:x}", "--keys"],
                ["list"],
                ["keep-alive", "--once", f"{lease:x}"],
            ):
                for fmt in ("simple", "json", "fields"):
                    for _ in range(3):  # a second may tick between the two runs (remaining TTL, expiries)
                        theirs, ours = both("lease", *args, "-w", fmt)
                        if ours == theirs:
                            break
                    assert ours == theirs
        finally:
            client.lease_revoke(lease)
    for fmt in ("simple", "json", "fields"):
        assert both("lease", "timetolive", "1234", "-w", fmt)[1] == both("lease", "timetolive", "1234", "-w", fmt)[0]


@pytest.mark.parametrize(
    "args",
    [["member", "list"], ["endpoint", "status"], ["endpoint", "status", "--cluster"]],
    ids=["member list", "endpoint status", "endpoint status --cluster"],
)
@pytest.mark.parametrize("fmt", ["simple", "json", "fields", "table"])
def test_cluster_views(both: Pair, args: list[str], fmt: str) -> None:
    for _ in range(3):  # a lease expiring between the two runs moves the raft index
        theirs, ours = both(*args, "-w", fmt)
        if ours == theirs:
            break
    assert ours == theirs


@pytest.mark.parametrize("fmt", ["simple", "json", "fields", "table"])
def test_endpoint_health(both: Pair, fmt: str) -> None:
    took = re.compile(r"(?<=took = )\S+|(?<=\"took\":\")[^\"]+|(?<=\"Took\" : )\S+|(?<=\| )\s*[0-9.]+[µm]?s(?= \|)")
    theirs, ours = both("endpoint", "health", "-w", fmt)
    assert ours.code == theirs.code == 0
    if fmt == "table":  # the TOOK column is as wide as the time it took
        ours_lines, their_lines = ours.out.splitlines(), theirs.out.splitlines()
        assert len(ours_lines) == len(their_lines) == 5
        assert [c.strip() for c in ours_lines[1].split("|")] == [c.strip() for c in their_lines[1].split("|")]
        assert [c.strip() for c in ours_lines[3].split("|")][:3] == [c.strip() for c in their_lines[3].split("|")][:3]
        return
    assert took.sub("T", ours.out) == took.sub("T", theirs.out)
    assert took.sub("T", ours.err) == took.sub("T", theirs.err)


def test_move_leader_to_itself(both: Pair, etcd_server: ServerProcess) -> None:
    with Client(etcd_server.url) as client:
        me = client.status().header.member_id
    for fmt in ("simple", "json"):
        theirs, ours = both("move-leader", f"{me:x}", "-w", fmt)
        assert ours == theirs


def test_watch_side_by_side(etcd_server: ServerProcess, prefix: str, processes: Callable[..., Process]) -> None:
    """Both watch the same prefix from the same revision: every format prints the same bytes."""
    address = etcd_server.url.removeprefix("http://")
    env = {"ETCDCTL_API": "3"}
    with Client(etcd_server.url) as client:
        start = client.put(f"{prefix}marker", "").revision + 1
        pairs = {}
        for fmt in ("simple", "json", "fields"):
            args = [
                "--endpoints",
                address,
                "watch",
                "--prefix",
                f"{prefix}w",
                "--prev-kv",
                "--rev",
                str(start),
                "-w",
                fmt,
            ]
            pairs[fmt] = (processes(["etcdctl", *args], env), processes([*CTL, *args]))
        steps: list[Callable[[], object]] = [
            lambda: client.put(f"{prefix}w1", "a"),
            lambda: client.put(f"{prefix}w1", 'b "quoted"'),
            lambda: client.delete(f"{prefix}w1"),
            lambda: client.put(f"{prefix}w2", b"\xffbytes"),
        ]
        counts = [
            {"simple": 3, "json": 1, "fields": 11},
            {"simple": 5, "json": 1, "fields": 17},
            {"simple": 5, "json": 1, "fields": 17},
            {"simple": 3, "json": 1, "fields": 11},
        ]
        for step, count in zip(steps, counts, strict=True):
            step()  # one change at a time: a replay may batch revisions differently
            for fmt, (etcdctl, corralctl) in pairs.items():
                assert corralctl.lines(count[fmt]) == etcdctl.lines(count[fmt]), fmt
