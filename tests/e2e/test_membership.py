"""Membership changes on a running cluster through etcd's `/v3/cluster/member/*` API."""

from __future__ import annotations

import base64
import concurrent.futures
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.test_cluster import member_id, post, wait_for_leader
from tests.support.servers import ServerProcess, corral_cluster, joining_member, peer_url


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def members_of(member: ServerProcess) -> list[dict[str, object]]:
    response = post(member, "/v3/cluster/member/list", {})
    assert response.status_code == 200, response.text
    return list(response.json()["members"])


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def start(members: list[ServerProcess]) -> None:
    """Start the members and wait until each has published its client URLs through the log."""
    for member in members:
        member.spawn()
    for member in members:
        member.wait_healthy(20.0)
    wait_until(
        lambda: all(
            len(members_of(m)) == len(members) and all("clientURLs" in x for x in members_of(m)) for m in members
        ),
        10.0,
        "every member's attributes published",
    )


def test_every_member_lists_all_members_with_their_names_and_client_urls(tmp_path: Path) -> None:
    members = corral_cluster(tmp_path, 3)
    try:
        start(members)
        expected = sorted((m.args[m.args.index("--name") + 1], m.url, peer_url(m)) for m in members)

        def published() -> bool:
            return all(
                sorted((str(x.get("name")), *x.get("clientURLs", ["-"]), *x["peerURLs"]) for x in members_of(m))  # type: ignore[misc]
                == expected
                for m in members
            )

        wait_until(published, 10.0, "each member's name and client URL published through the log")
        ids = {m["ID"] for m in members_of(members[0])}
        assert ids == {member_id(m) for m in members}
        leader = wait_for_leader(members)
        metrics = httpx.get(leader.url + "/metrics", timeout=5.0).text
        round_trips = [line for line in metrics.splitlines()
                       if line.startswith("etcd_network_peer_round_trip_time_seconds_count")]  # fmt: skip
        assert len(round_trips) == 2, metrics  # one per peer, measured on heartbeats
        assert "etcd_server_is_leader 1.0" in metrics
    finally:
        for member in members:
            member.kill()


def test_refused_member_changes_get_etcds_errors(tmp_path: Path) -> None:
    members = corral_cluster(tmp_path, 3)
    try:
        start(members)
        leader = wait_for_leader(members)
        follower = next(m for m in members if m is not leader)

        def error(path: str, body: dict[str, object]) -> tuple[int, int, str]:
            response = post(follower, path, body)
            doc = response.json()
            return response.status_code, doc["code"], doc["message"]

        assert error("/v3/cluster/member/remove", {"ID": "12345"}) == (404, 5, "etcdserver: member not found")
        assert error("/v3/cluster/member/promote", {"ID": member_id(leader)}) == (
            400, 9, "etcdserver: can only promote a learner member",
        )  # fmt: skip
        assert error("/v3/cluster/member/add", {"peerURLs": [peer_url(leader)]}) == (
            400, 9, "etcdserver: Peer URLs already exists",
        )  # fmt: skip
        for bad in ([], ["not a url"], ["http://127.0.0.1:1/path"], ["ftp://127.0.0.1:1"]):
            assert error("/v3/cluster/member/add", {"peerURLs": bad}) == (
                400, 3, "etcdserver: given member URLs are invalid",
            ), bad  # fmt: skip

        # A learner that never starts: listed without name or client URLs, its URL can change, one at most.
        added = post(follower, "/v3/cluster/member/add", {"peerURLs": ["http://127.0.0.1:1"], "isLearner": True})
        assert added.status_code == 200, added.text
        learner = added.json()["member"]
        assert learner["isLearner"] is True and learner["peerURLs"] == ["http://127.0.0.1:1"]
        assert {"name", "clientURLs"}.isdisjoint(learner)
        assert learner in added.json()["members"]
        assert error("/v3/cluster/member/add", {"peerURLs": ["http://127.0.0.1:2"], "isLearner": True}) == (
            400, 9, "etcdserver: too many learner members in cluster",
        )  # fmt: skip
        assert error("/v3/cluster/member/promote", {"ID": learner["ID"]}) == (
            400, 9, "etcdserver: can only promote a learner member which is in sync with leader",
        )  # fmt: skip
        updated = post(leader, "/v3/cluster/member/update", {"ID": learner["ID"], "peerURLs": ["http://127.0.0.1:3"]})
        assert updated.status_code == 200, updated.text
        assert {**learner, "peerURLs": ["http://127.0.0.1:3"]} in updated.json()["members"]
        removed = post(follower, "/v3/cluster/member/remove", {"ID": learner["ID"]})
        assert removed.status_code == 200, removed.text
        assert learner["ID"] not in {m["ID"] for m in removed.json()["members"]}
        assert len(members_of(leader)) == 3
    finally:
        for member in members:
            member.kill()


def test_a_learner_joins_is_promoted_and_replaces_the_leader_under_load(tmp_path: Path) -> None:
    """Add a fourth member as a learner while clients write, let it catch up (through a snapshot: the
    log it needs is compacted), promote it, remove the old leader; no acknowledged write is lost."""
    members = corral_cluster(
        tmp_path, 3, extra=["--snapshot-count", "1000", "--experimental-snapshot-catchup-entries", "200"]
    )
    joiner: ServerProcess | None = None
    stop = threading.Event()
    acked: dict[str, str] = {}
    try:
        start(members)
        leader = wait_for_leader(members)
        followers = [m for m in members if m is not leader]
        with httpx.Client(timeout=5.0) as client:
            for i in range(1200):  # past a snapshot, so the log a joiner needs is compacted
                response = (
                    client.post(follower.url + "/v3/kv/put", json={"key": b64(f"pre/{i}"), "value": b64("v")})
                    if (follower := followers[i % 2])
                    else None
                )
                assert response is not None and response.status_code == 200, response
                acked[f"pre/{i}"] = response.json()["header"]["revision"]

        def writer(worker: int) -> None:
            with httpx.Client(timeout=10.0) as client:
                i = 0
                while not stop.is_set():
                    key, target = f"load/{worker}/{i}", followers[i % 2]
                    i += 1
                    try:
                        response = client.post(target.url + "/v3/kv/put", json={"key": b64(key), "value": b64(key)})
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 200:
                        acked[key] = response.json()["header"]["revision"]

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            writers = [pool.submit(writer, w) for w in range(3)]
            try:
                joiner = joining_member(leader, "n4")
                announce = {"peerURLs": [peer_url(joiner)], "isLearner": True}
                added = post(followers[0], "/v3/cluster/member/add", announce)
                assert added.status_code == 200, added.text
                new_id = added.json()["member"]["ID"]
                joiner.start(30.0)

                def promoted() -> bool:
                    response = post(followers[1], "/v3/cluster/member/promote", {"ID": new_id})
                    assert response.status_code in (200, 400), response.text
                    return response.status_code == 200

                wait_until(  # once it has the snapshot, it knows it is a learner
                    lambda: post(joiner, "/v3/maintenance/status", {}).json().get("isLearner") is True,
                    30.0, "the joiner learned the membership",
                )  # fmt: skip
                wait_until(promoted, 30.0, "the learner caught up and was promoted")
                assert "isLearner" not in post(joiner, "/v3/maintenance/status", {}).json()
                removed = post(followers[0], "/v3/cluster/member/remove", {"ID": member_id(leader)})
                assert removed.status_code == 200, removed.text
                remaining = [*followers, joiner]
                new_leader = wait_for_leader(remaining)
                time.sleep(1.0)  # writes go on under the new configuration
                stop.set()
                for future in writers:
                    future.result(timeout=60)
            finally:
                stop.set()  # on failure too: the pool waits for its writers
        leader.kill()  # the removed member no longer counts: the other three are the cluster
        assert post(new_leader, "/v3/kv/put", {"key": b64("after"), "value": b64("x")}).status_code == 200
        listed = members_of(joiner)
        assert sorted(m["ID"] for m in listed) == sorted(member_id(m) for m in remaining)
        assert not any(m.get("isLearner") for m in listed)
        assert len(acked) > 500
        with httpx.Client(timeout=10.0) as client:
            for key, revision in acked.items():
                response = client.post(joiner.url + "/v3/kv/range", json={"key": b64(key)})
                kvs = response.json().get("kvs")
                assert kvs and kvs[0]["mod_revision"] == revision, (key, revision, response.text)
    finally:
        stop.set()
        for member in [*members, *([joiner] if joiner else [])]:
            member.kill()


def test_a_joined_member_restarts_from_its_own_log(tmp_path: Path) -> None:
    members = corral_cluster(tmp_path, 3)
    joiner: ServerProcess | None = None
    try:
        start(members)
        leader = wait_for_leader(members)
        joiner = joining_member(leader, "n4")
        assert post(leader, "/v3/cluster/member/add", {"peerURLs": [peer_url(joiner)]}).status_code == 200
        joiner.start(30.0)
        assert post(joiner, "/v3/kv/put", {"key": b64("k"), "value": b64("1")}).status_code == 200
        for member in [joiner, leader]:  # a joiner and a founder: neither bootstraps again
            member.kill()
            member.restart(30.0)
        everyone = [*members, joiner]
        wait_for_leader(everyone)
        for member in everyone:
            response = post(member, "/v3/kv/range", {"key": b64("k")})
            assert response.json()["kvs"][0]["value"] == b64("1"), member.log_tail()
            assert len(members_of(member)) == 4
    finally:
        for member in [*members, *([joiner] if joiner else [])]:
            member.kill()
