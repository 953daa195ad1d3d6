"""A three-member Raft cluster on loopback: replication, follower forwarding, failover, catch-up."""

from __future__ import annotations

import base64
import signal
import time
from pathlib import Path

import httpx

from tests.support.servers import ServerProcess, corral_cluster


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def post(member: ServerProcess, path: str, body: dict[str, object], timeout: float = 10.0) -> httpx.Response:
    return httpx.post(member.url + path, json=body, timeout=timeout)


def status(member: ServerProcess) -> dict[str, str] | None:
    try:
        response = post(member, "/v3/maintenance/status", {}, timeout=1.0)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def wait_for_leader(members: list[ServerProcess], timeout: float = 15.0) -> ServerProcess:
    """The member every live member agrees leads, once they agree."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reports = [status(m) for m in members]
        leaders = {r.get("leader") for r in reports if r is not None}
        if None not in [r for r in reports] and len(leaders) == 1 and leaders != {None}:
            (leader_id,) = leaders
            for member, report in zip(members, reports, strict=True):
                assert report is not None
                if report["header"]["member_id"] == leader_id:  # type: ignore[index]
                    return member
        time.sleep(0.1)
    raise AssertionError(f"no agreed leader within {timeout}s: {[status(m) for m in members]}")


def value_at(member: ServerProcess, key: str) -> str | None:
    response = post(member, "/v3/kv/range", {"key": b64(key)})
    assert response.status_code == 200, response.text
    kvs = response.json().get("kvs")
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def test_writes_replicate_and_reads_are_linearizable_on_every_member(cluster: list[ServerProcess]) -> None:
    leader = wait_for_leader(cluster)
    followers = [m for m in cluster if m is not leader]
    response = post(followers[0], "/v3/kv/put", {"key": b64("k"), "value": b64("from-follower")})
    assert response.status_code == 200, response.text
    revision = response.json()["header"]["revision"]
    for member in cluster:
        assert value_at(member, "k") == "from-follower"  # linearizable: ReadIndex, then local read
    headers = [post(m, "/v3/kv/range", {"key": b64("k")}).json()["header"] for m in cluster]
    assert len({h["cluster_id"] for h in headers}) == 1
    assert len({h["member_id"] for h in headers}) == 3
    assert {h["revision"] for h in headers} == {revision}
    assert len({h["raft_term"] for h in headers}) == 1


def test_a_new_leader_takes_over_after_the_leader_is_killed(cluster: list[ServerProcess]) -> None:
    leader = wait_for_leader(cluster)
    for i in range(20):
        assert post(leader, "/v3/kv/put", {"key": b64(f"before/{i}"), "value": b64("x")}).status_code == 200
    leader.kill(signal.SIGKILL)
    survivors = [m for m in cluster if m is not leader]
    started = time.monotonic()
    new_leader = wait_for_leader(survivors, timeout=10.0)
    assert time.monotonic() - started < 1.0 + 2.0 + 2.0  # election timeout + 2 s (the bound) + polling
    assert new_leader is not leader
    for i in range(20):
        response = post(survivors[i % 2], "/v3/kv/put", {"key": b64(f"after/{i}"), "value": b64("y")})
        assert response.status_code == 200, response.text
    leader.start()  # the old leader comes back as a follower and catches up
    wait_for_leader(cluster)
    assert value_at(leader, "after/19") == "y"
    assert value_at(leader, "before/0") == "x"


def test_a_member_without_quorum_accepts_no_writes(cluster: list[ServerProcess]) -> None:
    leader = wait_for_leader(cluster)
    lone = next(m for m in cluster if m is not leader)
    for member in cluster:
        if member is not lone:
            member.kill(signal.SIGKILL)
    response = post(lone, "/v3/kv/put", {"key": b64("nope"), "value": b64("z")}, timeout=15.0)
    assert response.status_code == 503, response.text
    assert response.json()["message"] in ("etcdserver: no leader", "etcdserver: request timed out")


def test_a_member_far_behind_catches_up_through_a_snapshot(tmp_path: Path) -> None:
    members = corral_cluster(
        tmp_path, 3, extra=["--snapshot-count", "100", "--experimental-snapshot-catchup-entries", "20"]
    )
    for member in members:
        member.spawn()
    try:
        leader = wait_for_leader(members)
        lagging = next(m for m in members if m is not leader)
        lagging.kill(signal.SIGKILL)
        live = [m for m in members if m is not lagging]
        for i in range(400):
            response = post(live[i % 2], "/v3/kv/put", {"key": b64(f"k/{i % 50}"), "value": b64(str(i))})
            assert response.status_code == 200, response.text
        leader_snaps = list((leader.data_dir / "member" / "snap").glob("*.snap"))
        assert leader_snaps, "the leader should have snapshotted and compacted its log"
        lagging.start()
        wait_for_leader(members)
        assert value_at(lagging, "k/49") == "399"
        log = lagging.log_tail(200)
        assert list((lagging.data_dir / "member" / "snap").glob("*.snap")), log
    finally:
        for member in members:
            member.kill()


def test_a_paused_leader_steps_down_when_it_resumes(cluster: list[ServerProcess]) -> None:
    leader = wait_for_leader(cluster)
    assert leader.proc is not None
    leader.proc.send_signal(signal.SIGSTOP)
    try:
        survivors = [m for m in cluster if m is not leader]
        new_leader = wait_for_leader(survivors, timeout=10.0)
        assert post(new_leader, "/v3/kv/put", {"key": b64("during-pause"), "value": b64("1")}).status_code == 200
    finally:
        leader.proc.send_signal(signal.SIGCONT)
    assert wait_for_leader(cluster) is new_leader  # the old leader learned the newer term and followed
    assert value_at(leader, "during-pause") == "1"


def test_acknowledged_writes_survive_killing_the_leader_under_load(cluster: list[ServerProcess]) -> None:
    import concurrent.futures

    leader = wait_for_leader(cluster)
    followers = [m for m in cluster if m is not leader]
    acked: dict[str, str] = {}

    def writer(worker: int) -> None:
        with httpx.Client(timeout=10.0) as client:
            for i in range(200):
                key = f"load/{worker}/{i}"
                target = followers[i % 2]
                try:
                    response = client.post(target.url + "/v3/kv/put", json={"key": b64(key), "value": b64(key)})
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    acked[key] = response.json()["header"]["revision"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(writer, w) for w in range(4)]
        time.sleep(0.5)
        leader.kill(signal.SIGKILL)
        for future in futures:
            future.result(timeout=120)
    survivor = wait_for_leader(followers)
    assert len(acked) > 100
    for key, revision in acked.items():
        response = post(survivor, "/v3/kv/range", {"key": b64(key)})
        kvs = response.json().get("kvs")
        assert kvs and kvs[0]["mod_revision"] == revision, (key, revision, response.text)


def test_leadership_moves_on_request_and_members_are_listed(cluster: list[ServerProcess]) -> None:
    leader = wait_for_leader(cluster)
    target = next(m for m in cluster if m is not leader)
    target_id = post(target, "/v3/maintenance/status", {}).json()["header"]["member_id"]
    other = next(m for m in cluster if m is not leader and m is not target)
    refused = post(other, "/v3/maintenance/transfer-leadership", {"targetID": target_id})
    assert (refused.status_code, refused.json()["message"]) == (400, "etcdserver: not leader")
    unknown = post(leader, "/v3/maintenance/transfer-leadership", {"targetID": "12345"})
    assert (unknown.status_code, unknown.json()["message"]) == (400, "etcdserver: bad leader transferee")
    moved = post(leader, "/v3/maintenance/transfer-leadership", {"targetID": target_id})
    assert (moved.status_code, moved.text) == (200, "{}")
    assert wait_for_leader(cluster) is target
    listed = post(other, "/v3/cluster/member/list", {}).json()
    assert "revision" not in listed["header"]
    assert sorted(m["name"] for m in listed["members"]) == ["n1", "n2", "n3"]
    assert target_id in {m["ID"] for m in listed["members"]}


def member_id(member: ServerProcess) -> str:
    return str(post(member, "/v3/maintenance/status", {}).json()["header"]["member_id"])


def partition(member: ServerProcess, peers: list[ServerProcess]) -> None:
    response = post(member, "/corral/faults/partition", {"peers": [member_id(p) for p in peers]})
    assert response.status_code == 200, response.text


def test_a_partitioned_leader_accepts_no_writes_while_the_majority_does(tmp_path: Path) -> None:
    members = corral_cluster(tmp_path, 3, extra=["--experimental-fault-injection"])
    for member in members:
        member.spawn()
    try:
        leader = wait_for_leader(members)
        majority = [m for m in members if m is not leader]
        ids = {id(m): member_id(m) for m in members}
        assert len(set(ids.values())) == 3
        partition(leader, majority)  # symmetric: the leader drops the majority's traffic...
        for member in majority:
            partition(member, [leader])  # ...and the majority drops the leader's
        new_leader = wait_for_leader(majority, timeout=10.0)
        assert new_leader is not leader
        ok = post(majority[0], "/v3/kv/put", {"key": b64("majority"), "value": b64("yes")})
        assert ok.status_code == 200, ok.text
        refused = post(leader, "/v3/kv/put", {"key": b64("minority"), "value": b64("no")}, timeout=15.0)
        assert refused.status_code == 503, refused.text
        stale = post(leader, "/v3/kv/range", {"key": b64("majority")}, timeout=15.0)
        assert stale.status_code == 503, stale.text  # a linearizable read cannot be served without quorum
        for member in members:
            partition(member, [])  # heal
        wait_for_leader(members)
        assert value_at(leader, "majority") == "yes"
        assert value_at(new_leader, "minority") is None  # the refused write never happened
    finally:
        for member in members:
            member.kill()
