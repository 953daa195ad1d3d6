"""Leases over HTTP on one member: grant, attach, keep alive, time to live, revoke, expiry, restart."""

from __future__ import annotations

import time

import httpx
import orjson

from tests.api.conftest import make_client
from tests.api.test_http import Ns, assert_error, b64, get_kv, ok, put, revision, unb64
from tests.support.servers import ServerProcess


def grant(client: httpx.Client, ttl: int, lease_id: int = 0) -> int:
    body = {"TTL": str(ttl), **({"ID": str(lease_id)} if lease_id else {})}
    return int(ok(client, "/v3/lease/grant", body)["ID"])


def test_grant_keeps_the_revision_and_raises_small_ttls_to_the_minimum(client: httpx.Client) -> None:
    before = revision(client)
    granted = ok(client, "/v3/lease/grant", {"TTL": 60})
    assert granted["TTL"] == "60" and int(granted["ID"]) > 0
    assert ok(client, "/v3/lease/grant", {})["TTL"] == "2"  # 1.5 election timeouts, rounded up
    assert ok(client, "/v3/lease/grant", {"ttl": "30", "id": "5"})["TTL"] == "2"  # lower-case names are unknown
    assert revision(client) == before
    assert int(granted["ID"]) in {int(x["ID"]) for x in ok(client, "/v3/lease/leases", {})["leases"]}


def test_grant_errors(client: httpx.Client) -> None:
    lease = grant(client, 30)
    assert_error(client.post("/v3/lease/grant", json={"TTL": 30, "ID": str(lease)}), 400, 9,
                 "etcdserver: lease already exists")  # fmt: skip
    assert_error(client.post("/v3/lease/grant", json={"TTL": "9000000001"}), 400, 11, "etcdserver: too large lease TTL")
    assert_error(client.post("/v3/kv/put", json={"key": b64("k"), "lease": "77"}), 404, 5,
                 "etcdserver: requested lease not found")  # fmt: skip
    assert_error(client.post("/v3/lease/revoke", json={"ID": "77"}), 404, 5, "etcdserver: requested lease not found")


def test_keys_attach_and_detach_and_revoke_deletes_them_in_one_revision(client: httpx.Client, ns: Ns) -> None:
    lease = grant(client, 60)
    for name in ("a", "b", "c"):
        put(client, ns(name), lease=str(lease))
    put(client, ns("c"))  # a put without a lease detaches the key
    put(client, ns("b"), b"kept", ignore_lease=True)  # ignore_lease keeps it attached
    ttl = ok(client, "/v3/lease/timetolive", {"ID": str(lease), "keys": True})
    assert [unb64(k) for k in ttl["keys"]] == [ns("a"), ns("b")]
    assert ttl["grantedTTL"] == "60" and 55 <= int(ttl["TTL"]) <= 60
    before = revision(client)
    revoked = ok(client, "/v3/kv/lease/revoke", {"ID": str(lease)})
    assert int(revoked["header"]["revision"]) == before + 1
    assert get_kv(client, ns("a")) is None and get_kv(client, ns("b")) is None
    assert get_kv(client, ns("c")) is not None
    assert ok(client, "/v3/lease/timetolive", {"ID": str(lease)})["TTL"] == "-1"


def test_revoking_a_lease_without_keys_keeps_the_revision(client: httpx.Client) -> None:
    lease = grant(client, 60)
    before = revision(client)
    assert int(ok(client, "/v3/lease/revoke", {"ID": str(lease)})["header"]["revision"]) == before


def test_keepalive_answers_one_line_per_request(client: httpx.Client) -> None:
    lease = grant(client, 30)
    body = f'{{"ID":"{lease}"}}\n{{"ID":"{lease}"}} {{"ID":"999"}}'.encode()
    response = client.post("/v3/lease/keepalive", content=body)
    assert response.status_code == 200
    results = [orjson.loads(line)["result"] for line in response.content.splitlines()]
    assert [(r["ID"], r.get("TTL")) for r in results] == [(str(lease), "30"), (str(lease), "30"), ("999", None)]


def test_an_expired_lease_deletes_its_keys_in_one_revision(client: httpx.Client, ns: Ns) -> None:
    lease = grant(client, 2)
    put(client, ns("x"), lease=str(lease))
    put(client, ns("y"), lease=str(lease))
    kept = grant(client, 2)
    before = revision(client)
    deadline = time.monotonic() + 10
    while get_kv(client, ns("x")) is not None and time.monotonic() < deadline:
        assert client.post("/v3/lease/keepalive", json={"ID": str(kept)}).status_code == 200
        time.sleep(0.2)
    assert get_kv(client, ns("x")) is None and get_kv(client, ns("y")) is None
    assert revision(client) == before + 1  # both keys went in one revision
    assert ok(client, "/v3/lease/timetolive", {"ID": str(lease)})["TTL"] == "-1"
    assert ok(client, "/v3/lease/timetolive", {"ID": str(kept)})["TTL"] != "-1"  # kept alive meanwhile


def test_leases_and_their_keys_survive_a_restart_and_a_snapshot(fresh_server: ServerProcess) -> None:
    fresh_server.args += ["--snapshot-count", "5"]
    fresh_server.kill()
    fresh_server.restart()
    with make_client(fresh_server) as client:
        lease = grant(client, 600)
        for i in range(10):  # past the snapshot count: the leases travel in the snapshot
            put(client, f"k{i}".encode(), lease=str(lease))
    fresh_server.kill()
    fresh_server.restart()
    with make_client(fresh_server) as client:
        ttl = ok(client, "/v3/lease/timetolive", {"ID": str(lease), "keys": True})
        assert ttl["grantedTTL"] == "600" and len(ttl["keys"]) == 10
        ok(client, "/v3/lease/revoke", {"ID": str(lease)})
        assert get_kv(client, b"k3") is None


def test_one_long_keepalive_request_answers_each_object_as_it_arrives(
    client: httpx.Client, server: ServerProcess
) -> None:
    """A raw chunked request: each object is sent only after the answer to the previous one is read."""
    import socket
    from urllib.parse import urlsplit

    lease = grant(client, 30)
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=5.0) as sock:
        head = "POST /v3/lease/keepalive HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head.encode())
        reader = sock.makefile("rb")
        for i in range(3):
            chunk = orjson.dumps({"ID": str(lease)})
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            if i == 0:  # the response starts with the first answer
                assert b" 200 " in reader.readline()
                while reader.readline() not in (b"\r\n", b""):
                    pass  # response headers
            size = int(reader.readline().strip(), 16)  # the answer's chunk, before the body has ended
            line = reader.read(size + 2)[:size]
            assert orjson.loads(line)["result"]["TTL"] == "30"
            time.sleep(0.2)
        sock.sendall(b"0\r\n\r\n")
