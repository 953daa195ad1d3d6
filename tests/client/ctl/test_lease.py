"""lease grant/revoke/timetolive/list/keep-alive against Corral and etcd."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable

from corral.client import Client

from tests.client.ctl.conftest import CTL, Ctl, Process
from tests.support.servers import ServerProcess


def test_grant_and_revoke(server: ServerProcess, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    granted = ctl(*ep, "lease", "grant", "60")
    match = re.fullmatch(r"lease ([0-9a-f]{16}) granted with TTL\(60s\)\n", granted.out)
    assert granted.code == 0 and match, granted
    lease = match.group(1)
    assert ctl(*ep, "lease", "revoke", lease) == (0, f"lease {lease} revoked\n", "")
    again = ctl(*ep, "lease", "revoke", lease)
    assert again == (1, "", "Error: failed to revoke lease (etcdserver: requested lease not found)\n")
    assert ctl(*ep, "lease", "grant").code == 128
    assert ctl(*ep, "lease", "revoke", "xyz").code == 128


def test_grant_json_and_fields(server: ServerProcess, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    data = json.loads(ctl(*ep, "lease", "grant", "60", "-w", "json").out)
    assert list(data) == ["cluster_id", "member_id", "revision", "raft_term", "ID", "TTL", "Error"]
    assert (data["TTL"], data["Error"]) == (60, "")
    with Client(server.url) as client:
        header = client.lease_revoke(data["ID"])
        revoked = ctl(*ep, "lease", "grant", "60", "-w", "fields").out.splitlines()
        assert revoked[:4] == [
            f'"ClusterID" : {header.cluster_id}',
            f'"MemberID" : {header.member_id}',
            f'"Revision" : {header.revision}',
            f'"RaftTerm" : {header.raft_term}',
        ]
        lease_id = int(revoked[4].removeprefix('"ID" : '))
        assert revoked[5:] == ['"TTL" : 60']
        out = ctl(*ep, "lease", "revoke", f"{lease_id:x}", "-w", "json").out
        assert json.loads(out) == {
            "header": {
                "cluster_id": header.cluster_id,
                "member_id": header.member_id,
                "revision": header.revision,
                "raft_term": header.raft_term,
            }
        }


def test_time_to_live(server: ServerProcess, prefix: str, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    with Client(server.url) as client:
        lease = client.lease_grant(60).id
        try:
            client.put(f"{prefix}k1", "v", lease=lease)
            client.put(f"{prefix}k2", "v", lease=lease)
            plain = ctl(*ep, "lease", "timetolive", f"{lease:x}").out
            assert re.fullmatch(rf"lease {lease:016x} granted with TTL\(60s\), remaining\((59|60)s\)\n", plain)
            keys = ctl(*ep, "lease", "timetolive", f"{lease:x}", "--keys").out
            # etcd lists the attached keys in no particular order
            attached = keys.removesuffix("])\n").split(", attached keys([")[1]
            assert sorted(attached.split(" ")) == [f"{prefix}k1", f"{prefix}k2"]
            data = json.loads(ctl(*ep, "lease", "timetolive", f"{lease:x}", "--keys", "-w", "json").out)
            assert (data["id"], data["granted-ttl"]) == (lease, 60)
            assert sorted(data["keys"]) == [_b64(f"{prefix}k1"), _b64(f"{prefix}k2")]
            assert json.loads(ctl(*ep, "lease", "timetolive", f"{lease:x}", "-w", "json").out)["keys"] is None
            fields = ctl(*ep, "lease", "timetolive", f"{lease:x}", "--keys", "-w", "fields").out.splitlines()
            assert fields[4] == f'"ID" : {lease}' and fields[6] == '"GrantedTTL" : 60'
            assert sorted(fields[7:]) == [f'"Key" : "{prefix}k1"', f'"Key" : "{prefix}k2"']
        finally:
            client.lease_revoke(lease)
    assert ctl(*ep, "lease", "timetolive", "1234").out == "lease 0000000000001234 already expired\n"
    gone = json.loads(ctl(*ep, "lease", "timetolive", "1234", "-w", "json").out)
    assert (gone["id"], gone["ttl"], gone["granted-ttl"], gone["keys"]) == (0x1234, -1, 0, None)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_list(server: ServerProcess, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    with Client(server.url) as client:
        lease = client.lease_grant(60).id
        try:
            lines = ctl(*ep, "lease", "list").out.splitlines()
            assert re.fullmatch(r"found \d+ leases", lines[0]) and int(lines[0].split()[1]) == len(lines) - 1
            assert f"{lease:016x}" in lines[1:]
            data = json.loads(ctl(*ep, "lease", "list", "-w", "json").out)
            assert {"id": lease} in data["leases"] and data["revision"] > 0
            assert f'"ID" : {lease}' in ctl(*ep, "lease", "list", "-w", "fields").out.splitlines()
        finally:
            client.lease_revoke(lease)


def test_keep_alive_once(server: ServerProcess, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    with Client(server.url) as client:
        lease = client.lease_grant(60).id
        try:
            assert ctl(*ep, "lease", "keep-alive", "--once", f"{lease:x}") == (
                0,
                f"lease {lease:016x} keepalived with TTL(60)\n",
                "",
            )
            data = json.loads(ctl(*ep, "lease", "keep-alive", "--once", f"{lease:x}", "-w", "json").out)
            assert (data["ID"], data["TTL"]) == (lease, 60) and list(data)[:4] == [
                "cluster_id",
                "member_id",
                "revision",
                "raft_term",
            ]
        finally:
            client.lease_revoke(lease)
    missing = ctl(*ep, "lease", "keep-alive", "--once", f"{lease:x}")
    assert missing == (2, "", "Error: etcdserver: requested lease not found\n")


def test_keep_alive_until_revoked(server: ServerProcess, processes: Callable[..., Process]) -> None:
    with Client(server.url) as client:
        lease = client.lease_grant(3).id
        keeper = processes([*CTL, "--endpoints", server.url, "lease", "keep-alive", f"{lease:x}"])
        renewed = f"lease {lease:016x} keepalived with TTL(3)"
        assert keeper.lines(2, timeout=10) == [renewed, renewed]  # one at once, the next a TTL/3 later
        client.lease_revoke(lease)
        lines = keeper.lines(1, timeout=10)
        while lines[-1] == renewed:
            lines = keeper.lines(1, timeout=10)
        assert lines == [f"lease {lease:016x} expired or revoked."]
        assert keeper.proc.wait(10) == 0
