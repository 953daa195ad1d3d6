"""Leases in a three-member cluster: expiry is the leader's alone, a failover expires nothing, and an
abandoned lease's keys vanish in one revision that the watchers on every member see as one message."""

from __future__ import annotations

import base64
import random
import threading
import time
from pathlib import Path

import httpx
import orjson

from tests.e2e.test_cluster import b64, post, value_at, wait_for_leader
from tests.support.servers import ServerProcess, corral_cluster
from tests.support.streams import Stream

TTL = 4
LEASES = 100
GONE = [f"gone/{name}" for name in "abcdef"]  # the abandoned lease's keys


def alive(members: list[ServerProcess]) -> list[ServerProcess]:
    return [m for m in members if m.proc is not None and m.proc.poll() is None]


def put_leased(member: ServerProcess, key: str, lease: int) -> int:
    return post(member, "/v3/kv/put", {"key": b64(key), "value": b64("v"), "lease": str(lease)}).status_code


def time_to_live(member: ServerProcess, lease: int) -> int:
    return int(post(member, "/v3/lease/timetolive", {"ID": str(lease)}).json()["TTL"])


def watch_gone(member: ServerProcess, start_revision: int) -> tuple[Stream, int]:
    """A watch on gone/ from `start_revision`, and the member's revision when it was created."""
    request = {"key": b64("gone/"), "range_end": b64("gone0"), "start_revision": str(start_revision)}
    stream = Stream.open(member.url, "/v3/watch", [{"create_request": request}])
    (created,) = stream.wait_for(lambda results: len(results) >= 1, 10.0, f"created on {member.url}")
    assert created.get("created"), created
    return stream, int(created["header"]["revision"])


def check_one_delete_message(stream: Stream, revision: int, where: str) -> None:
    """The watch got exactly one message: every key of GONE deleted, all at `revision`."""
    stream.wait_for(lambda results: len(results) >= 2, 5.0, f"the expiry on {where}")
    messages = stream.wait_quiet(0.3, 5.0)[1:]
    assert len(messages) == 1, f"{where}: {len(messages)} messages: {messages}"
    events = messages[0].get("events", [])
    assert sorted(base64.b64decode(e["kv"]["key"]).decode() for e in events) == GONE, f"{where}: {events}"
    assert {e.get("type") for e in events} == {"DELETE"}, f"{where}: {events}"
    assert {int(e["kv"]["mod_revision"]) for e in events} == {revision}, f"{where}: {events}"


def test_killing_the_leader_expires_no_kept_lease_and_an_abandoned_one_expires_on_time(tmp_path: Path) -> None:
    members = corral_cluster(tmp_path, 3)
    stop = threading.Event()
    failures: list[str] = []
    streams: list[Stream] = []
    try:
        for member in members:
            member.spawn()
        for member in members:
            member.wait_healthy(30.0)
        leader = wait_for_leader(members)
        follower = next(m for m in members if m is not leader)
        leases: list[int] = []

        def keep_alive() -> None:
            """Every second renew all leases through some live member, retrying on failures."""
            with httpx.Client(timeout=2.0) as client:
                while not stop.is_set():
                    renewing = list(leases)  # the leases granted so far: renewed from their first second
                    keepalive_body = b"".join(orjson.dumps({"ID": str(lease)}) for lease in renewing)
                    if not renewing:
                        stop.wait(0.05)
                        continue
                    renewed = False
                    for member in random.sample(alive(members), len(alive(members))):
                        try:
                            response = client.post(member.url + "/v3/lease/keepalive", content=keepalive_body)
                        except httpx.HTTPError:
                            continue
                        if response.status_code == 200:
                            ttls = [orjson.loads(line)["result"].get("TTL") for line in response.content.splitlines()]
                            if ttls != [str(TTL)] * len(renewing):
                                failures.append(f"keepalive answered {ttls[:3]}...")
                            renewed = True
                            break
                    stop.wait(1.0 if renewed else 0.1)

        keeper = threading.Thread(target=keep_alive, daemon=True)
        keeper.start()
        for i in range(LEASES):
            lease = int(post(follower, "/v3/lease/grant", {"TTL": TTL}).json()["ID"])
            assert put_leased(follower, f"eph/{i}", lease) == 200
            leases.append(lease)
        time.sleep(1.5)
        leader.kill()
        survivors = alive(members)
        new_leader = wait_for_leader(survivors)
        abandoned = int(post(new_leader, "/v3/lease/grant", {"TTL": TTL}).json()["ID"])
        granted_at = time.monotonic()
        for key in GONE:
            assert put_leased(new_leader, key, abandoned) == 200
        before = int(post(new_leader, "/v3/kv/range", {"key": b64("gone/a")}).json()["header"]["revision"])
        for member in survivors:  # the new leader and the remaining follower, watching from the next revision
            stream, created_at = watch_gone(member, before + 1)
            streams.append(stream)
            assert created_at <= before, f"{member.url} applied the expiry before its watch was created"
        while value_at(new_leader, "gone/a") is not None:
            assert time.monotonic() - granted_at < TTL + 1.0 + 2.0, "the abandoned lease did not expire in time"
            time.sleep(0.1)
        assert all(value_at(new_leader, key) is None for key in GONE)
        after = int(post(new_leader, "/v3/kv/range", {"key": b64("gone/a")}).json()["header"]["revision"])
        assert after == before + 1  # every key in one revision
        for member, stream in zip(survivors, streams, strict=True):
            check_one_delete_message(stream, after, "the leader" if member is new_leader else "the follower")
        time.sleep(TTL)  # long past every TTL the failover could have cut short
        for i, lease in enumerate(leases):  # checked while the leases are still kept alive
            assert time_to_live(survivors[i % 2], lease) > 0, f"lease {i} expired"
        assert all(value_at(survivors[0], f"eph/{i}") is not None for i in range(LEASES))
        assert time_to_live(survivors[1], abandoned) == -1
        stop.set()
        keeper.join(10)
        assert not failures, failures
    finally:
        stop.set()
        for stream in streams:
            stream.close()
        for member in members:
            member.kill()
