"""etcd's election and lock services over HTTP on one member."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from typing import Any

import httpx

from tests.api.test_http import Ns, b64, get_kv, ok
from tests.api.test_leases import grant
from tests.support.servers import ServerProcess


def assert_refused(response: httpx.Response, message: str) -> None:
    """etcd's election/lock errors keep code 2 (Unknown), but Corral answers 400, not etcd's 500."""
    assert (response.status_code, response.json()) == (400, {"error": message, "message": message, "code": 2})


def campaign(server: ServerProcess, name: bytes, lease: int, value: bytes) -> dict[str, Any]:
    body = {"name": b64(name), "lease": str(lease), "value": b64(value)}
    response = httpx.post(server.url + "/v3/election/campaign", json=body, timeout=20.0)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_candidates_queue_by_creation_and_the_leader_proclaims_and_resigns(
    client: httpx.Client, server: ServerProcess, ns: Ns
) -> None:
    name = ns("election")
    first, second = grant(client, 60), grant(client, 60)
    won = campaign(server, name, first, b"one")["leader"]
    assert won["key"] == b64(name + b"/" + format(first, "x").encode())
    assert ok(client, "/v3/election/leader", {"name": b64(name)})["kv"]["value"] == b64(b"one")
    observed: list[dict[str, Any]] = []

    def observe() -> None:
        with httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as watcher:
            with watcher.stream("POST", server.url + "/v3/election/observe", json={"name": b64(name)}) as response:
                for line in response.iter_lines():
                    if line:
                        observed.append(json.loads(line)["result"]["kv"])
                    if len(observed) == 3:
                        return

    observer = threading.Thread(target=observe, daemon=True)
    observer.start()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(campaign, server, name, second, b"two")
        time.sleep(0.3)
        assert not waiting.done()  # the second candidate waits behind the first
        stale = {**won, "rev": str(int(won["rev"]) + 100)}
        refused = client.post("/v3/election/proclaim", json={"leader": stale, "value": b64(b"x")})
        assert_refused(refused, "election: not leader")
        ok(client, "/v3/election/proclaim", {"leader": won, "value": b64(b"one-v2")})
        ok(client, "/v3/election/resign", {"leader": won})
        assert waiting.result(timeout=10)["leader"]["lease"] == str(second)
    observer.join(10)
    assert [(kv["value"], kv["lease"]) for kv in observed] == [
        (b64(b"one"), str(first)), (b64(b"one-v2"), str(first)), (b64(b"two"), str(second)),
    ]  # fmt: skip
    assert_refused(client.post("/v3/election/leader", json={"name": b64(ns("nobody"))}), "election: no leader")
    assert_refused(client.post("/v3/election/proclaim", json={"value": b64(b"x")}), '"leader" field must be provided')


def test_locks_are_exclusive_reentrant_and_given_up_by_a_waiter_that_leaves(
    client: httpx.Client, server: ServerProcess, ns: Ns
) -> None:
    name = ns("lock")
    holder, other = grant(client, 60), grant(client, 60)
    key = ok(client, "/v3/lock/lock", {"name": b64(name), "lease": str(holder)})["key"]
    assert ok(client, "/v3/lock/lock", {"name": b64(name), "lease": str(holder)})["key"] == key  # re-entrant
    with httpx.Client(timeout=0.5) as impatient:  # a waiter that gives up: its key goes with it
        try:
            impatient.post(server.url + "/v3/lock/lock", json={"name": b64(name), "lease": str(other)})
            raise AssertionError("the lock was taken twice")
        except httpx.ReadTimeout:
            pass
    other_key = name + b"/" + format(other, "x").encode()
    deadline = time.monotonic() + 5
    while get_kv(client, other_key) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get_kv(client, other_key) is None
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        body = {"name": b64(name), "lease": str(other)}
        waiting = pool.submit(lambda: httpx.post(server.url + "/v3/lock/lock", json=body, timeout=20.0).json())
        time.sleep(0.3)
        assert not waiting.done()
        ok(client, "/v3/lock/unlock", {"key": key})
        assert waiting.result(timeout=10)["key"] == b64(other_key)
    unknown_lease = client.post("/v3/lock/lock", json={"name": b64(name), "lease": "12345"})
    assert_refused(unknown_lease, "etcdserver: requested lease not found")


def test_a_request_without_a_lease_gets_a_sixty_second_one(client: httpx.Client, ns: Ns) -> None:
    key = ok(client, "/v3/lock/lock", {"name": b64(ns("auto"))})["key"]
    lease = get_kv(client, __import__("base64").b64decode(key))["lease"]  # type: ignore[index]
    assert ok(client, "/v3/lease/timetolive", {"ID": lease})["grantedTTL"] == "60"
