"""get, put, del, txn and compaction against Corral and etcd, checking corralctl's output exactly."""

from __future__ import annotations

import base64
import json

import pytest
from corral.client import Client, KeyValue
from corral.client._models import Header

from tests.client.ctl.conftest import Ctl
from tests.support.servers import ServerProcess


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def header_json(h: Header) -> str:
    return (
        f'{{"cluster_id":{h.cluster_id},"member_id":{h.member_id},"revision":{h.revision},"raft_term":{h.raft_term}}}'
    )


def kv_json(kv: KeyValue) -> str:
    value = f',"value":"{b64(kv.value)}"' if kv.value else ""
    lease = f',"lease":{kv.lease}' if kv.lease else ""
    return (
        f'{{"key":"{b64(kv.key)}","create_revision":{kv.create_revision},"mod_revision":{kv.mod_revision},'
        f'"version":{kv.version}{value}{lease}}}'
    )


def test_put_and_get_simple(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    assert ctl(*ep, "put", f"{prefix}a", "1") == (0, "OK\n", "")
    assert ctl(*ep, "put", f"{prefix}b", "two words") == (0, "OK\n", "")
    assert ctl(*ep, "get", f"{prefix}a") == (0, f"{prefix}a\n1\n", "")
    assert ctl(*ep, "get", f"{prefix}missing").out == ""
    assert ctl(*ep, "get", f"{prefix}", "--prefix").out == f"{prefix}a\n1\n{prefix}b\ntwo words\n"
    assert ctl(*ep, "get", f"{prefix}a", f"{prefix}c").out == f"{prefix}a\n1\n{prefix}b\ntwo words\n"
    assert ctl(*ep, "get", f"{prefix}", "--prefix", "--print-value-only").out == "1\ntwo words\n"
    assert ctl(*ep, "get", f"{prefix}", "--prefix", "--keys-only").out == f"{prefix}a\n\n{prefix}b\n\n"
    assert ctl(*ep, "get", f"{prefix}", "--prefix", "--count-only").out == "2\n"
    assert ctl(*ep, "get", prefix, "--prefix", "--limit", "1", "--order", "DESCEND").out == f"{prefix}b\ntwo words\n"
    by_value = ctl(*ep, "get", prefix, "--prefix", "--sort-by=VALUE", "--order=descend", "--print-value-only")
    assert by_value.out == "two words\n1\n"
    assert ctl(*ep, "get", f"{prefix}b", "--from-key", "--limit=1").out == f"{prefix}b\ntwo words\n"
    assert ctl(*ep, "get", f"{prefix}a", "--consistency=s").out == f"{prefix}a\n1\n"
    assert ctl(*ep, "get", f"{prefix}a", "--hex").out == "".join(f"\\x{b:02x}" for b in f"{prefix}a".encode()) + (
        "\n\\x31\n"
    )


def test_get_everything_with_an_empty_prefix(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    ctl("--endpoints", server.url, "put", f"{prefix}k", "v")
    everything = ctl("--endpoints", server.url, "get", "", "--prefix", "--keys-only")
    assert everything.code == 0 and f"{prefix}k\n" in everything.out


def test_get_at_a_revision(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    with Client(server.url) as client:
        first = client.put(f"{prefix}k", "old").revision
        client.put(f"{prefix}k", "new")
    assert ctl("--endpoints", server.url, "get", f"{prefix}k", "--rev", str(first)).out == f"{prefix}k\nold\n"


def test_get_json_and_fields(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    with Client(server.url) as client:
        client.put(f"{prefix}a", "1")
        client.put(f"{prefix}b", "2")
        result = client.get(prefix, prefix=True)
    a, b = result.kvs
    ep = ["--endpoints", server.url]
    got = ctl(*ep, "get", prefix, "--prefix", "-w", "json")
    assert got.out == f'{{"header":{header_json(result.header)},"kvs":[{kv_json(a)},{kv_json(b)}],"count":2}}\n'
    limited = ctl(*ep, "-w", "json", "get", prefix, "--prefix", "--limit", "1")
    assert limited.out == f'{{"header":{header_json(result.header)},"kvs":[{kv_json(a)}],"more":true,"count":2}}\n'
    keys_only = json.loads(ctl(*ep, "get", prefix, "--prefix", "--keys-only", "-w", "json").out)
    assert [kv.get("value") for kv in keys_only["kvs"]] == [None, None]
    h = result.header
    fields = ctl(*ep, "get", f"{prefix}a", "--write-out=fields").out
    assert fields == (
        f'"ClusterID" : {h.cluster_id}\n"MemberID" : {h.member_id}\n"Revision" : {h.revision}\n'
        f'"RaftTerm" : {h.raft_term}\n"Key" : "{prefix}a"\n"CreateRevision" : {a.create_revision}\n'
        f'"ModRevision" : {a.mod_revision}\n"Version" : 1\n"Value" : "1"\n"Lease" : 0\n"More" : false\n'
        '"Count" : 1\n'
    )
    nothing = ctl(*ep, "get", f"{prefix}none", "-w", "json").out
    assert nothing == f'{{"header":{header_json(h)}}}\n'


def test_put_flags(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    key = f"{prefix}k"
    assert ctl(*ep, "put", key, "v1").out == "OK\n"
    assert ctl(*ep, "put", key, "v2", "--prev-kv").out == f"OK\n{key}\nv1\n"
    assert ctl(*ep, "put", key, stdin=b"from\nstdin\n").out == "OK\n"
    assert ctl(*ep, "get", key, "--print-value-only").out == "from\nstdin\n\n"
    with Client(server.url) as client:
        lease = client.lease_grant(60).id
        try:
            assert ctl(*ep, "put", key, "leased", f"--lease={lease:x}").out == "OK\n"
            assert client.get(key).kvs[0].lease == lease
            assert ctl(*ep, "put", key, "kept lease", "--ignore-lease").out == "OK\n"
            assert client.get(key).kvs[0] == KeyValue(key.encode(), b"kept lease", *_revs(client, key), lease)
            # a put without --lease detaches the lease, even one that keeps the value
            assert ctl(*ep, "put", key, "--ignore-value", "--prev-kv=true").out == f"OK\n{key}\nkept lease\n"
            assert client.get(key).kvs[0] == KeyValue(key.encode(), b"kept lease", *_revs(client, key), 0)
        finally:
            client.lease_revoke(lease)
    put = ctl(*ep, "put", f"{prefix}j", "x", "-w", "json")
    assert json.loads(put.out)["header"]["revision"] > 0 and set(json.loads(put.out)) == {"header"}
    prev = ctl(*ep, "put", f"{prefix}j", "y", "--prev-kv", "-w", "fields").out.splitlines()
    assert prev[4:] == [f'"PrevKey" : "{prefix}j"', *prev[5:8], '"PrevValue" : "x"', '"PrevLease" : 0']
    assert ctl(*ep, "put", "--", f"-{prefix}", "dash").out == "OK\n"


def _revs(client: Client, key: str) -> tuple[int, int, int]:
    kv = client.get(key).kvs[0]
    return kv.create_revision, kv.mod_revision, kv.version


def test_delete(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    for name in "abc":
        ctl(*ep, "put", f"{prefix}{name}", name.upper())
    assert ctl(*ep, "del", f"{prefix}a") == (0, "1\n", "")
    assert ctl(*ep, "del", f"{prefix}a") == (0, "0\n", "")
    assert ctl(*ep, "del", f"{prefix}b", "--prev-kv").out == f"1\n{prefix}b\nB\n"
    ctl(*ep, "put", f"{prefix}b", "B")
    deleted = json.loads(ctl(*ep, "del", prefix, "--prefix", "--prev-kv", "-w", "json").out)
    assert deleted["deleted"] == 2
    assert [base64.b64decode(kv["key"]).decode() for kv in deleted["prev_kvs"]] == [f"{prefix}b", f"{prefix}c"]
    ctl(*ep, "put", f"{prefix}d", "D")
    fields = ctl(*ep, "del", f"{prefix}d", f"{prefix}e", "-w", "fields").out.splitlines()
    assert fields[4] == '"Deleted" : 1' and len(fields) == 5


TXN = """mod("{p}a") > "0"
value("{p}a") = "1"

put {p}res ok
get {p}a
del {p}gone

put {p}res fail
get {p}a

"""


def test_txn_from_stdin(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    ctl(*ep, "put", f"{prefix}a", "1")
    script = TXN.format(p=prefix).encode()
    assert ctl(*ep, "txn", stdin=script) == (0, f"SUCCESS\n\nOK\n\n{prefix}a\n1\n\n0\n", "")
    ctl(*ep, "put", f"{prefix}a", "2")
    assert ctl(*ep, "txn", stdin=script).out == f"FAILURE\n\nOK\n\n{prefix}a\n2\n"
    with Client(server.url) as client:
        assert client.get(f"{prefix}res").value == b"fail"
    interactive = ctl(*ep, "txn", "-i", stdin=f'value("{prefix}a") = "2"\n\nput {prefix}i "a b"\n\n\n'.encode())
    assert interactive.out == (
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n"
    )
    # no trailing blank line: the end of input closes the sections
    assert ctl(*ep, "txn", stdin=f"\nget {prefix}i".encode()).out == f"SUCCESS\n\n{prefix}i\na b\n"


def test_txn_json_and_fields(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    out = ctl(*ep, "txn", "-w", "json", stdin=f"\nput {prefix}k v\nget {prefix}k\n\n\n".encode()).out
    with Client(server.url) as client:
        result = client.get(f"{prefix}k")
    (kv,) = result.kvs
    data = json.loads(out)
    assert data["header"]["revision"] == kv.mod_revision and data["succeeded"] is True
    put, get = data["responses"]
    assert put["Response"]["ResponsePut"]["header"]["revision"] == kv.mod_revision
    assert json.dumps(get["Response"]["ResponseRange"]["kvs"], separators=(",", ":")) == f"[{kv_json(kv)}]"
    fields = ctl(*ep, "txn", "-w", "fields", stdin=f'value("{prefix}k") = "x"\n\n\nget {prefix}k\n\n'.encode())
    lines = fields.out.splitlines()
    assert lines[4] == '"Succeeded" : false'
    assert lines[9:] == [
        f'"Key" : "{prefix}k"',
        *lines[10:13],
        '"Value" : "v"',
        '"Lease" : 0',
        '"More" : false',
        '"Count" : 1',
    ]


def test_txn_errors(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    bad = ctl(*ep, "txn", stdin=b'bogus("k") > "0"\n\n\n\n')
    assert (bad.code, bad.err) == (3, 'Error: malformed comparison: bogus("k") > "0" (unknown target bogus)\n')
    assert ctl(*ep, "txn", stdin=b"\nfrob a\n\n\n").err == "Error: invalid txn request: frob a\n"
    assert ctl(*ep, "txn", "-w", "table", stdin=b"\n\n\n").code == 4


def test_compaction(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    with Client(server.url) as client:
        revision = client.put(f"{prefix}k", "v").revision
    ep = ["--endpoints", server.url]
    assert ctl(*ep, "compaction", str(revision)) == (0, f"compacted revision {revision}\n", "")
    again = ctl(*ep, "compaction", "--physical", str(revision))
    assert again == (1, "", "Error: etcdserver: mvcc: required revision has been compacted\n")
    future = ctl(*ep, "compaction", str(revision + 1000))
    assert future == (1, "", "Error: etcdserver: mvcc: required revision is a future revision\n")
    assert ctl(*ep, "compaction").code == 128
    assert ctl(*ep, "compaction", "x") == (1, "", 'Error: strconv.ParseInt: parsing "x": invalid syntax\n')


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["get"], 128, "get command needs one argument as key and an optional argument as range_end"),
        (["get", "a", "b", "c"], 128, "get command needs one argument as key and an optional argument as range_end"),
        (
            ["get", "a", "--prefix", "--from-key"],
            128,
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ),
        (
            ["get", "a", "b", "--prefix"],
            128,
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
        ),
        (["get", "a", "--sort-by=BAD"], 4, "bad sort target BAD"),
        (["get", "a", "--order=bad"], 4, "bad sort order bad"),
        (["get", "a", "--consistency=x"], 4, 'unknown consistency flag "x"'),
        (["get", "a", "-w", "table"], 4, "table not supported as output format"),
        (["put"], 128, "put command needs 1 argument and input from stdin or 2 arguments"),
        (["put", "a", "b", "--ignore-value"], 128, "put command needs only 1 argument when 'ignore-value' is set"),
        (["del"], 128, "del command needs one argument as key and an optional argument as range_end"),
        (["get", "a", "--rev", "99999999"], 1, "etcdserver: mvcc: required revision is a future revision"),
        (["put", "a", "b", "--lease", "1234"], 1, "etcdserver: requested lease not found"),
    ],
)
def test_usage_and_server_errors(server: ServerProcess, ctl: Ctl, args: list[str], code: int, message: str) -> None:
    assert ctl("--endpoints", server.url, *args) == (code, "", f"Error: {message}\n")


def test_unknown_flags_and_commands(ctl: Ctl) -> None:
    unknown = ctl("get", "a", "--bogus")
    assert unknown.code == 1 and unknown.err.startswith("Error: unrecognized arguments: --bogus")
    assert ctl("bogus").code == 1
    assert ctl("lease", "grant", "x").code == 128
    assert ctl("member", "remove", "zz") == (
        128,
        "",
        "Error: bad member ID arg ('zz' is not a hexadecimal ID), expecting ID in Hex\n",
    )
    assert ctl().code == 0
    assert ctl("--dial-timeout", "soon", "get", "a").code == 128


def test_endpoints_from_flags_and_environment(
    corral_server: ServerProcess, prefix: str, ctl: Ctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"{prefix}k"
    address = corral_server.url.removeprefix("http://")
    assert ctl("put", key, "v", "--endpoints", address).out == "OK\n"
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", "127.0.0.1:1")
    monkeypatch.setenv("CORRALCTL_ENDPOINTS", corral_server.url)
    assert ctl("get", key).out == f"{key}\nv\n"
    monkeypatch.delenv("CORRALCTL_ENDPOINTS")
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", corral_server.url)
    monkeypatch.setenv("ETCDCTL_WRITE_OUT", "json")
    assert json.loads(ctl("get", key).out)["count"] == 1
    # a dead endpoint first: reads fail over to the next one
    assert ctl("--endpoints", f"127.0.0.1:1,{address}", "-w", "simple", "get", key).out == f"{key}\nv\n"


def test_unreachable_endpoint_fails_within_the_command_timeout(ctl: Ctl) -> None:
    failed = ctl("--endpoints", "127.0.0.1:1", "--command-timeout=1s", "get", "k")
    assert failed.code == 1 and failed.out == ""
    assert failed.err.startswith("Error: http://127.0.0.1:1: ")
