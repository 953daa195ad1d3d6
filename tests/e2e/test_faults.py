"""Five-member clusters and asymmetric partitions on loopback (faults beyond test_cluster.py's)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.e2e.test_cluster import b64, member_id, post, value_at, wait_for_leader
from tests.support.servers import ServerProcess, corral_cluster


def start(members: list[ServerProcess]) -> None:
    for member in members:
        member.spawn()
    for member in members:
        member.wait_healthy(30.0)


def put(member: ServerProcess, key: str, value: str, timeout: float = 10.0) -> int:
    try:
        return post(member, "/v3/kv/put", {"key": b64(key), "value": b64(value)}, timeout=timeout).status_code
    except httpx.HTTPError:
        return 0


def cut(member: ServerProcess, peers: list[ServerProcess], direction: str = "both") -> None:
    body = {"peers": [member_id(p) for p in peers], "direction": direction}
    response = post(member, "/corral/faults/partition", body)
    assert response.status_code == 200, response.text


def test_five_members_survive_two_failures_but_not_three(tmp_path: Path) -> None:
    members = corral_cluster(tmp_path, 5)
    try:
        start(members)
        leader = wait_for_leader(members)
        assert put(leader, "k", "0") == 200
        followers = [m for m in members if m is not leader]
        leader.kill()
        followers[0].kill()
        alive = followers[1:]
        new_leader = wait_for_leader(alive)
        assert put(alive[0], "k", "1") == 200  # three of five are a quorum
        assert all(value_at(m, "k") == "1" for m in alive)
        victim = next(m for m in alive if m is not new_leader)
        victim.kill()
        two = [m for m in alive if m is not victim]
        assert put(two[0], "k", "2", timeout=15.0) != 200  # two of five are not
        leader.restart(30.0)
        wait_for_leader([*two, leader])
        assert put(leader, "k", "3") == 200
        assert all(value_at(m, "k") == "3" for m in [*two, leader])
    finally:
        for member in members:
            member.kill()


def test_a_leader_that_cannot_hear_its_followers_gives_way(tmp_path: Path) -> None:
    """An asymmetric partition: the leader's messages reach the followers, theirs never reach it. Its
    heartbeats alone must not keep it in office: CheckQuorum deposes it and the others elect a leader."""
    members = corral_cluster(tmp_path, 3, extra=["--experimental-fault-injection"])
    try:
        start(members)
        leader = wait_for_leader(members)
        others = [m for m in members if m is not leader]
        cut(leader, others, "inbound")
        new_leader = wait_for_leader(others, timeout=15.0)
        assert new_leader is not leader
        assert put(others[0], "majority", "yes") == 200
        assert put(leader, "deaf", "no", timeout=10.0) != 200
        cut(leader, [])
        wait_for_leader(members)
        assert value_at(leader, "majority") == "yes"
        assert value_at(new_leader, "deaf") is None
    finally:
        for member in members:
            member.kill()


def test_a_one_way_cut_between_followers_does_not_stop_the_cluster(tmp_path: Path) -> None:
    members = corral_cluster(tmp_path, 3, extra=["--experimental-fault-injection"])
    try:
        start(members)
        leader = wait_for_leader(members)
        a, b = (m for m in members if m is not leader)
        cut(a, [b], "outbound")
        for i in range(20):
            assert put(a if i % 2 else b, f"k{i}", str(i)) == 200
            time.sleep(0.05)
        time.sleep(2.5)  # longer than an election timeout: no one may have disrupted the leader
        assert wait_for_leader(members) is leader
        assert all(value_at(m, "k19") == "19" for m in members)
    finally:
        for member in members:
            member.kill()
