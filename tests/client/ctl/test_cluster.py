"""member, endpoint, move-leader and snapshot: single servers (Corral and etcd) and a 3-member Corral."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from corral.client import Client, Status
from corral.client.ctl import rpc
from corral.client.ctl.textfmt import human_bytes, table

from tests.client.ctl.conftest import Ctl
from tests.support.servers import ServerProcess, cluster_leader, corral_cluster


def _member_list(url: str) -> tuple[dict[str, int], list[list[str]]]:
    """The member list's header (as etcdctl's JSON shows it) and its rows (as the table shows them)."""
    with Client(url) as client:
        listing = rpc.member_list(client)
    rows = [
        [f"{m.id:x}", "started" if m.name else "unstarted", m.name, ",".join(m.peer_urls), ",".join(m.client_urls),
         "true" if m.is_learner else "false"]
        for m in listing.members
    ]  # fmt: skip
    h = listing.header
    return {"cluster_id": h.cluster_id, "member_id": h.member_id, "raft_term": h.raft_term}, rows


def test_member_list(server: ServerProcess, ctl: Ctl) -> None:
    header, rows = _member_list(server.url)
    ep = ["--endpoints", server.url]
    assert ctl(*ep, "member", "list") == (0, "".join(", ".join(row) + "\n" for row in rows), "")
    head = ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"]
    assert ctl(*ep, "member", "list", "-w", "table").out == table(head, rows)
    data = json.loads(ctl(*ep, "member", "list", "-w", "json").out)
    assert data["header"] == header and [f"{m['ID']:x}" for m in data["members"]] == [row[0] for row in rows]
    fields = ctl(*ep, "member", "list", "-w", "fields").out.splitlines()
    assert fields[:4] == [
        f'"ClusterID" : {header["cluster_id"]}',
        f'"MemberID" : {header["member_id"]}',
        '"Revision" : 0',
        f'"RaftTerm" : {header["raft_term"]}',
    ]
    assert fields[5] == f'"Name" : "{rows[0][2]}"' and fields[-2:] == ['"IsLearner" : false', ""]


def test_membership_changes_on_etcd(etcd_server: ServerProcess, ctl: Ctl) -> None:
    """A learner can join a one-member etcd without costing quorum: add, update, promote (refused), remove."""
    ep = ["--endpoints", etcd_server.url]
    added = ctl(*ep, "member", "add", "newbie", "--peer-urls=http://127.0.0.1:1,http://127.0.0.1:2", "--learner")
    match = re.match(r"Member ([0-9a-f ]{16}) added to cluster ([0-9a-f ]{16})\n\n", added.out)
    assert added.code == 0 and match, added
    new_id = match.group(1).strip()
    with Client(etcd_server.url) as client:
        members = client.members()  # in the server's order, as the add answer lists them
        cluster_id = client.status().header.cluster_id
    initial = ",".join(f"{m.name or 'newbie'}={url}" for m in members for url in m.peer_urls)
    assert added.out.splitlines()[2:] == [
        'ETCD_NAME="newbie"',
        f'ETCD_INITIAL_CLUSTER="{initial}"',
        'ETCD_INITIAL_ADVERTISE_PEER_URLS="http://127.0.0.1:1,http://127.0.0.1:2"',
        'ETCD_INITIAL_CLUSTER_STATE="existing"',
    ]
    try:
        assert (
            f"{new_id}, unstarted, , http://127.0.0.1:1,http://127.0.0.1:2, , true\n" in ctl(*ep, "member", "list").out
        )
        updated = ctl(*ep, "member", "update", new_id, "--peer-urls=http://127.0.0.1:3")
        assert updated == (0, f"Member {int(new_id, 16):16x} updated in cluster {cluster_id:16x}\n", "")
        refused = ctl(*ep, "member", "promote", new_id)
        assert refused == (1, "", "Error: etcdserver: can only promote a learner member which is in sync with leader\n")
    finally:
        removed = ctl(*ep, "member", "remove", new_id)
    assert removed == (0, f"Member {int(new_id, 16):16x} removed from cluster {cluster_id:16x}\n", "")
    assert ctl(*ep, "member", "remove", new_id) == (1, "", "Error: etcdserver: member not found\n")
    assert ctl(*ep, "member", "add", "x").err == "Error: member peer urls not provided\n"
    assert ctl(*ep, "member", "add", "x", "--peer-urls=http://127.0.0.1:4", "-w", "fields").code == 4


def test_membership_refused_by_a_single_corral(corral_server: ServerProcess, ctl: Ctl) -> None:
    refused = ctl("--endpoints", corral_server.url, "member", "add", "x", "--peer-urls=http://127.0.0.1:1")
    assert refused.code == 1 and "runs without Raft" in refused.err


@pytest.fixture(scope="module")
def corral_trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    members = corral_cluster(tmp_path_factory.mktemp("ctl-trio"), 3)
    for member in members:
        member.spawn()
    try:
        cluster_leader(members, timeout=30)
        with Client(members[0].url) as client:  # members publish their client URLs just after they start
            deadline = time.monotonic() + 20
            while not all(m.client_urls for m in client.members()) and time.monotonic() < deadline:
                time.sleep(0.1)
        yield members
    finally:
        for member in members:
            member.kill()


def test_membership_and_move_leader_on_a_corral_cluster(corral_trio: list[ServerProcess], ctl: Ctl) -> None:
    ep = ["--endpoints", ",".join(m.url for m in corral_trio)]
    rows = ctl(*ep, "endpoint", "status", "--cluster").out.splitlines()
    assert len(rows) == 3 and sum(row.split(", ")[4] == "true" for row in rows) == 1
    added = ctl(*ep, "member", "add", "learner", "--peer-urls=http://127.0.0.1:1", "--learner", "-w", "json")
    data = json.loads(added.out)
    new_id = data["member"]["ID"]
    assert data["member"]["isLearner"] is True and len(data["members"]) == 4
    try:
        assert f"{new_id:x}, unstarted, , http://127.0.0.1:1, , true" in ctl(*ep, "member", "list").out
        assert ctl(*ep, "member", "update", f"{new_id:x}", "--peer-urls=http://127.0.0.1:2").code == 0
        assert ctl(*ep, "member", "promote", f"{new_id:x}").code == 1
    finally:
        removed = ctl(*ep, "member", "remove", f"{new_id:x}")
    assert removed.code == 0 and removed.out.startswith(f"Member {new_id:16x} removed from cluster ")
    leader, leader_id = cluster_leader(corral_trio)
    follower = next(m for m in corral_trio if m is not leader)
    with Client(follower.url) as client:
        follower_id = client.status().header.member_id
    moved = ctl(*ep, "move-leader", f"{follower_id:x}")
    assert moved == (0, f"Leadership transferred from {int(leader_id):x} to {follower_id:x}\n", "")
    assert cluster_leader(corral_trio)[0] is follower


def _status_row(endpoint: str, s: Status) -> list[str]:
    return [
        endpoint,
        f"{s.header.member_id:x}",
        s.version,
        human_bytes(s.db_size),
        str(s.is_leader).lower(),
        str(s.is_learner).lower(),
        str(s.raft_term),
        str(s.raft_index),
        str(s.raft_applied_index),
        "",
    ]


def test_endpoint_status_table_for_two_endpoints(
    corral_server: ServerProcess, etcd_server: ServerProcess, ctl: Ctl
) -> None:
    endpoints = [corral_server.url.removeprefix("http://"), etcd_server.url]
    head = [
        "ENDPOINT",
        "ID",
        "VERSION",
        "DB SIZE",
        "IS LEADER",
        "IS LEARNER",
        "RAFT TERM",
        "RAFT INDEX",
        "RAFT APPLIED INDEX",
        "ERRORS",
    ]
    with Client(corral_server.url) as corral, Client(etcd_server.url) as etcd:
        for _ in range(5):  # a lease expiring elsewhere may move a raft index between the reads
            before = [corral.status(), etcd.status()]
            got = ctl("--endpoints", ",".join(endpoints), "endpoint", "status", "-w", "table")
            after = [corral.status(), etcd.status()]
            if before == after:
                break
    assert got.code == 0 and got.err == ""
    assert got.out == table(head, [_status_row(e, s) for e, s in zip(endpoints, after, strict=True)])
    assert got.out.splitlines()[1] == (
        "|        ENDPOINT        |        ID        | VERSION | DB SIZE | IS LEADER | IS LEARNER | RAFT TERM "
        "| RAFT INDEX | RAFT APPLIED INDEX | ERRORS |"
    )


def test_endpoint_status_formats(server: ServerProcess, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    simple = ctl(*ep, "endpoint", "status").out.split(", ")
    assert simple[0] == server.url and simple[4:6] == ["true", "false"] and simple[-1] == "\n"
    (item,) = json.loads(ctl(*ep, "endpoint", "status", "-w", "json").out)
    assert item["Endpoint"] == server.url
    assert list(item["Status"])[:4] == ["header", "version", "dbSize", "leader"]
    fields = ctl(*ep, "endpoint", "status", "-w", "fields").out.splitlines()
    assert fields[4].startswith('"Version" : "') and fields[-2:] == [f'"Endpoint" : "{server.url}"', ""]
    assert ctl(*ep, "endpoint", "status", "--cluster").out.startswith(f"{server.url}, ")


def test_endpoint_status_with_a_dead_endpoint(server: ServerProcess, ctl: Ctl) -> None:
    got = ctl("--endpoints", f"{server.url},127.0.0.1:1", "--command-timeout=1s", "endpoint", "status")
    assert got.code == 1 and got.out.startswith(f"{server.url}, ")
    assert got.err.startswith("Failed to get the status of endpoint 127.0.0.1:1 (")


def test_endpoint_health(server: ServerProcess, ctl: Ctl) -> None:
    ep = ["--endpoints", server.url]
    healthy = ctl(*ep, "endpoint", "health")
    assert healthy.code == 0 and healthy.out == ""
    assert re.fullmatch(
        rf"{server.url} is healthy: successfully committed proposal: took = [0-9.]+[µm]?s\n", healthy.err
    )
    (item,) = json.loads(ctl(*ep, "endpoint", "health", "-w", "json").out)
    assert list(item) == ["endpoint", "health", "took"] and item["health"] is True
    lines = ctl(*ep, "endpoint", "health", "-w", "table").out.splitlines()
    assert lines[1] == f"|{'ENDPOINT':^{len(server.url) + 2}}| HEALTH |{'TOOK':^{len(lines[3].split('|')[3])}}| ERROR |"
    sick = ctl("--endpoints", f"{server.url},127.0.0.1:1", "--command-timeout=1s", "endpoint", "health", "-w", "fields")
    assert sick.code == 1 and sick.err == "Error: unhealthy cluster\n"
    blocks = sick.out.split("\n\n")
    assert blocks[0].splitlines()[:2] == [f'"Endpoint" : "{server.url}"', '"Health" : true']
    assert blocks[1].splitlines()[:2] == ['"Endpoint" : "127.0.0.1:1"', '"Health" : false']


def test_move_leader_to_itself_and_to_a_stranger(server: ServerProcess, ctl: Ctl) -> None:
    with Client(server.url) as client:
        me = client.status().header.member_id
    ep = ["--endpoints", server.url]
    assert ctl(*ep, "move-leader", f"{me:x}") == (0, f"Leadership transferred from {me:x} to {me:x}\n", "")
    assert ctl(*ep, "move-leader", "123") == (1, "", "Error: etcdserver: bad leader transferee\n")
    assert ctl(*ep, "move-leader", f"{me:x}", "-w", "json").out == "{}\n"


@pytest.mark.parametrize("kind", ["etcd", "corral"])
def test_snapshot_save(kind: str, request: pytest.FixtureRequest, prefix: str, tmp_path: Path, ctl: Ctl) -> None:
    server: ServerProcess = request.getfixturevalue(f"{kind}_server")
    with Client(server.url) as client:
        client.put(f"{prefix}k", "in the snapshot")
    path = tmp_path / "backup.db"
    got = ctl("--endpoints", server.url, "snapshot", "save", str(path))
    assert got == (0, f"Snapshot saved at {path}\n", ""), got
    assert path.stat().st_size > 0 and not (tmp_path / "backup.db.part").exists()
    assert (path.stat().st_mode & 0o777) == 0o600


def test_snapshot_save_usage(corral_server: ServerProcess, etcd_server: ServerProcess, ctl: Ctl) -> None:
    assert ctl("snapshot", "save").code == 128
    both = ctl("--endpoints", f"{corral_server.url},{etcd_server.url}", "snapshot", "save", "/tmp/never")
    assert both.code == 128 and "one selected node" in both.err
