"""Leases in a three-member cluster: expiry is the leader's alone, and a failover expires nothing."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import orjson

from tests.e2e.test_cluster import b64, post, value_at, wait_for_leader
from tests.support.servers import ServerProcess, corral_cluster

TTL = 4
LEASES = 100


def alive(members: list[ServerProcess]) -> list[ServerProcess]:
    return [m for m in members if m.proc is not None and m.proc.poll() is None]


def put_leased(member: ServerProcess, key: str, lease: int) -> int:
    return post(member, "/v3/kv/put", {"key": b64(key), "value": b64("v"), "lease": str(lease)}).status_code


def time_to_live(member: ServerProcess, lease: int) -> int:
    return int(post(member, "/v3/lease/timetolive", {"ID": str(lease)}).json()["TTL"])


def test_killing_the_leader_expires_no_kept_lease_and_an_abandoned_one_expires_on_time(tmp_path: Path) -> None:
    members = corral_cluster(tmp_path, 3)
    stop = threading.Event()
    failures: list[str] = []
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
        for key in ("gone/a", "gone/b"):
            assert put_leased(new_leader, key, abandoned) == 200
        granted_at = time.monotonic()
        before = int(post(new_leader, "/v3/kv/range", {"key": b64("gone/a")}).json()["header"]["revision"])
        while value_at(new_leader, "gone/a") is not None:
            assert time.monotonic() - granted_at < TTL + 1.0 + 2.0, "the abandoned lease did not expire in time"
            time.sleep(0.1)
        assert value_at(new_leader, "gone/b") is None
        after = int(post(new_leader, "/v3/kv/range", {"key": b64("gone/a")}).json()["header"]["revision"])
        assert after == before + 1  # both keys in one revision
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
        for member in members:
            member.kill()
