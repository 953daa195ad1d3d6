"""`POST /v3/maintenance/snapshot` and `corral snapshot restore|status`, on real members.

A snapshot is saved from a member with keys, history (overwrites, deletes, a compaction) and a lease, as
raw HTTP lines and through `corral.client.Client.snapshot`; the stream is checked line by line against
etcd's chunking (32 KiB blobs, `remaining_bytes` after each, then the SHA-256). The file is restored into
a new data directory and a member started on it must answer exactly as the original did: every key, the
revision, reads of the retained history, the compaction point and the lease with its keys. A snapshot
taken while a writer keeps committing must hold exactly one revision's state.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import subprocess
import sys
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from corral.api.app import create_app
from corral.api.server import CorralServer, ServerConfig
from corral.api.snapshot_file import CHUNK_BYTES, DIGEST_BYTES, load, read
from corral.client import Client
from corral.store.state_machine import KVSnapshot
from corral.store.types import LeaseGrantRequest, PutRequest

from tests.api.conftest import make_client
from tests.support.servers import REPO_ROOT, ServerProcess, corral_process, running

ALL = {"key": "AA==", "range_end": "AA=="}  # every key
WAIT = 30.0  # seconds: the bound on any one CLI run or request here


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, (path, body, response.text)
    answer = response.json()
    assert isinstance(answer, dict)
    return answer


def snapshot_lines(url: str) -> list[dict[str, Any]]:
    """The `result` of every line of one snapshot stream, read as it arrives (status and type checked)."""
    results = []
    with httpx.Client(base_url=url, timeout=WAIT) as client:
        with client.stream("POST", "/v3/maintenance/snapshot", content=b"{}") as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            assert response.headers.get("transfer-encoding") == "chunked"
            for line in response.iter_lines():
                if line:
                    message = json.loads(line)
                    assert list(message) == ["result"], line[:200]
                    results.append(message["result"])
    return results


def corral_cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], cwd=cwd, capture_output=True, text=True, timeout=WAIT
    )


@pytest.fixture
def populated(fresh_server: ServerProcess) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    """A member holding keys over more than three 32 KiB chunks, history, a compaction and a lease."""
    with make_client(fresh_server) as client:
        for i in range(40):
            post(client, "/v3/kv/put", {"key": b64(f"big/{i:02}"), "value": b64(f"{i:02}" * 2000)})
        post(client, "/v3/kv/put", {"key": b64("h/a"), "value": b64("1")})
        compact_at = int(post(client, "/v3/kv/put", {"key": b64("h/a"), "value": b64("2")})["header"]["revision"])
        post(client, "/v3/kv/put", {"key": b64("h/b"), "value": b64("gone soon")})
        post(client, "/v3/kv/deleterange", {"key": b64("h/b")})
        post(client, "/v3/kv/compaction", {"revision": str(compact_at)})
        old = int(post(client, "/v3/kv/put", {"key": b64("h/a"), "value": b64("3")})["header"]["revision"])
        post(client, "/v3/kv/put", {"key": b64("h/a"), "value": b64("4")})
        lease = post(client, "/v3/lease/grant", {"TTL": "600"})["ID"]
        for name in ("lease/x", "lease/y"):
            post(client, "/v3/kv/put", {"key": b64(name), "value": b64("ephemeral"), "lease": lease})
        revision = int(post(client, "/v3/kv/range", {"key": b64("h/a")})["header"]["revision"])
        yield fresh_server, {"lease": lease, "compact_at": compact_at, "old": old, "revision": revision}


def test_the_stream_is_32_kib_blobs_counting_down_then_the_sha256(
    populated: tuple[ServerProcess, dict[str, Any]],
) -> None:
    server, facts = populated
    *chunks, digest = snapshot_lines(server.url)
    blobs = [base64.b64decode(c["blob"]) for c in chunks]
    data = b"".join(blobs)
    assert len(chunks) >= 4 and all(len(blob) == CHUNK_BYTES for blob in blobs[:-1]) and 0 < len(blobs[-1])
    # remaining_bytes: what is still to come after each line (etcd's v3rpc Snapshot); left out when 0
    sent = 0
    for chunk, blob in zip(chunks, blobs, strict=True):
        sent += len(blob)
        remaining = len(data) - sent
        assert chunk == ({"remaining_bytes": str(remaining)} if remaining else {}) | {"blob": chunk["blob"]}
    assert list(chunks[0]) == ["remaining_bytes", "blob"]  # etcd's field order
    assert digest == {"blob": b64(hashlib.sha256(data).digest())}
    state = load(data)
    assert state.store.revision == facts["revision"] and state.store.compact_revision == facts["compact_at"]
    assert len(state.leases.items()) == 1


def test_client_snapshot_saves_the_stream_with_its_digest(
    populated: tuple[ServerProcess, dict[str, Any]], tmp_path: Path
) -> None:
    server, facts = populated
    into = io.BytesIO()
    with Client(server.url) as client:
        written = client.snapshot(into)
    raw = into.getvalue()
    assert written == len(raw) and hashlib.sha256(raw[:-DIGEST_BYTES]).digest() == raw[-DIGEST_BYTES:]
    *chunks, _ = snapshot_lines(server.url)  # nothing was written since: the same bytes again
    assert raw[:-DIGEST_BYTES] == b"".join(base64.b64decode(c["blob"]) for c in chunks)
    path = tmp_path / "saved.db"
    path.write_bytes(raw)
    assert load(read(path)).store.revision == facts["revision"]


def test_a_restored_member_has_every_key_the_revision_the_history_the_compaction_and_the_lease(
    populated: tuple[ServerProcess, dict[str, Any]], tmp_path: Path
) -> None:
    server, facts = populated
    path = tmp_path / "backup.db"
    with Client(server.url) as client, path.open("wb") as into:
        client.snapshot(into)
    restored_dir = tmp_path / "restored" / "data"
    done = corral_cli("snapshot", "restore", str(path), "--data-dir", str(restored_dir), "--name", "n1")
    assert done.returncode == 0, done.stderr
    revision = facts["revision"]
    assert done.stdout == f"Restored snapshot {path} into {restored_dir} (revision {revision}, total keys 43)\n"
    reads = [
        ALL,
        {**ALL, "revision": str(facts["old"])},  # retained history
        {**ALL, "revision": str(facts["compact_at"])},  # exactly at the compaction point
        {"key": b64("h/"), "range_end": b64("h0"), "count_only": True},
    ]
    lease = facts["lease"]
    with make_client(server) as original:
        expected = [original.post("/v3/kv/range", json=body).json() for body in reads]
        ttl = post(original, "/v3/lease/timetolive", {"ID": lease, "keys": True})
    with running(corral_process(restored_dir, name="n1")) as restored, make_client(restored) as client:
        for body, want in zip(reads, expected, strict=True):
            got = post(client, "/v3/kv/range", body)
            assert got["header"]["revision"] == want["header"]["revision"] == str(facts["revision"])
            assert {k: v for k, v in got.items() if k != "header"} == {k: v for k, v in want.items() if k != "header"}
        assert len(expected[0]["kvs"]) == 43
        below = client.post("/v3/kv/range", json={**ALL, "revision": str(facts["compact_at"] - 1)})
        assert below.json()["message"] == "etcdserver: mvcc: required revision has been compacted"
        again = client.post("/v3/kv/compaction", json={"revision": str(facts["compact_at"])})
        assert again.json()["message"] == "etcdserver: mvcc: required revision has been compacted"
        restored_ttl = post(client, "/v3/lease/timetolive", {"ID": lease, "keys": True})
        assert restored_ttl["grantedTTL"] == ttl["grantedTTL"] == "600"
        assert sorted(restored_ttl["keys"]) == sorted(ttl["keys"]) == [b64("lease/x"), b64("lease/y")]
        assert post(client, "/v3/lease/leases", {})["leases"] == [{"ID": lease}]
        # the member goes on from there: the next write is the next revision, and the lease still owns its keys
        written = post(client, "/v3/kv/put", {"key": b64("new"), "value": b64("1")})
        assert written["header"]["revision"] == str(facts["revision"] + 1)
        post(client, "/v3/lease/revoke", {"ID": lease})
        assert "kvs" not in post(client, "/v3/kv/range", {"key": b64("lease/"), "range_end": b64("lease0")})


def test_status_prints_etcdctls_columns(populated: tuple[ServerProcess, dict[str, Any]], tmp_path: Path) -> None:
    server, facts = populated
    path = tmp_path / "backup.db"
    with Client(server.url) as client, path.open("wb") as into:
        client.snapshot(into)
    data = path.read_bytes()[:-DIGEST_BYTES]
    crc, size, revision = zlib.crc32(data), len(data), facts["revision"]
    assert 3 * CHUNK_BYTES < size < 999_500
    human = f"{size / 1000:.0f} kB"  # go-humanize's SI form for 10 kB..999 kB
    simple = corral_cli("snapshot", "status", str(path))
    assert (simple.returncode, simple.stdout, simple.stderr) == (0, f"{crc:x}, {revision}, 43, {human}\n", "")
    as_json = corral_cli("snapshot", "status", str(path), "-w", "json")
    assert json.loads(as_json.stdout) == {"hash": crc, "revision": revision, "totalKey": 43, "totalSize": size}
    fields = corral_cli("snapshot", "status", str(path), "--write-out", "fields").stdout
    assert fields == f'"Hash" : {crc}\n"Revision" : {revision}\n"Keys" : 43\n"Size" : {size}\n'
    table = corral_cli("snapshot", "status", str(path), "-w", "table").stdout.splitlines()
    assert len(table) == 5 and table[0] == table[2] == table[4] and set(table[0]) == {"+", "-"}
    assert [cell.strip() for cell in table[1].split("|")[1:-1]] == ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"]
    assert [cell.strip() for cell in table[3].split("|")[1:-1]] == [f"{crc:x}", str(revision), "43", human]
    assert table[3].endswith(f" {human} |")  # cells right-aligned, as etcdctl's table has them


def test_restore_refuses_a_damaged_file_a_used_data_dir_and_a_cluster(
    populated: tuple[ServerProcess, dict[str, Any]], tmp_path: Path
) -> None:
    server, _ = populated
    path = tmp_path / "backup.db"
    with Client(server.url) as client, path.open("wb") as into:
        client.snapshot(into)
    raw = path.read_bytes()
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    target = tmp_path / "target"
    refused = corral_cli("snapshot", "restore", str(damaged), "--data-dir", str(target))
    assert refused.returncode == 1 and refused.stderr.startswith(f"Error: {damaged}: expected sha256 ")
    assert not target.exists()
    assert corral_cli("snapshot", "status", str(damaged)).returncode == 1
    cut = tmp_path / "cut.db"
    cut.write_bytes(raw[: CHUNK_BYTES * 2])  # a stream that ended early
    assert "expected sha256" in corral_cli("snapshot", "restore", str(cut), "--data-dir", str(target)).stderr
    not_ours = tmp_path / "etcd.db"
    junk = b"\x00" * 4096  # what an etcd (bbolt) database starts like, with etcd's digest after it
    not_ours.write_bytes(junk + hashlib.sha256(junk).digest())
    other = corral_cli("snapshot", "restore", str(not_ours), "--data-dir", str(target))
    assert other.returncode == 1 and other.stderr.startswith("Error: not a Corral snapshot")
    # a bad digest alone passes with --skip-hash-check
    bad_digest = tmp_path / "bad-digest.db"
    bad_digest.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    assert corral_cli("snapshot", "restore", str(bad_digest), "--data-dir", str(target)).returncode == 1
    skipped = corral_cli("snapshot", "restore", str(bad_digest), "--data-dir", str(target), "--skip-hash-check")
    assert skipped.returncode == 0, skipped.stderr
    used = corral_cli("snapshot", "restore", str(path), "--data-dir", str(target))
    assert (used.returncode, used.stderr) == (1, f'Error: data-dir "{target}" not empty or could not be read\n')
    three = "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3"
    restore = ["snapshot", "restore", str(path), "--data-dir"]
    cluster = corral_cli(*restore, str(tmp_path / "c"), "--name", "a", "--initial-cluster", three)
    assert cluster.returncode == 1 and "single member" in cluster.stderr and not (tmp_path / "c").exists()
    stranger = corral_cli(*restore, str(tmp_path / "d"), "--name", "z", "--initial-cluster", "a=http://127.0.0.1:1")
    assert stranger.returncode == 1 and "couldn't find local name 'z'" in stranger.stderr
    assert corral_cli("snapshot").returncode == 2  # a subcommand is required
    # without --data-dir, the directory is etcd's default: <name>.etcd
    named = corral_cli("snapshot", "restore", str(path), "--name", "m", cwd=tmp_path)
    assert named.returncode == 0 and (tmp_path / "m.etcd" / "member" / "snap").is_dir()


def test_a_snapshot_taken_while_writes_go_on_holds_one_revision(fresh_server: ServerProcess) -> None:
    """A writer sets 32 keys to its round number in one txn per round, as fast as it can, while snapshots
    are taken: each snapshot must show all 32 at one round, last changed at the snapshot's revision."""
    keys = [f"g/{i:02}" for i in range(32)]
    with make_client(fresh_server) as client:
        for start in range(0, 2000, 100):  # some bulk, so that each snapshot takes a while to make and send
            ops = [
                {"request_put": {"key": b64(f"bulk/{i:04}"), "value": b64("v" * 300)}}
                for i in range(start, start + 100)
            ]
            post(client, "/v3/kv/txn", {"success": ops})

    stop = threading.Event()
    revisions: list[int] = []

    def write() -> None:
        with make_client(fresh_server) as writer:
            round_number = 0
            while not stop.is_set():
                round_number += 1
                ops = [{"request_put": {"key": b64(k), "value": b64(str(round_number))}} for k in keys]
                revisions.append(int(post(writer, "/v3/kv/txn", {"success": ops})["header"]["revision"]))

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    overlapped = 0
    try:
        while not revisions and thread.is_alive():
            stop.wait(0.01)  # the keys exist once the first round is in
        with Client(fresh_server.url) as client:
            for _ in range(5):
                before = len(revisions)
                into = io.BytesIO()
                client.snapshot(into)
                overlapped += len(revisions) > before  # the writer committed while this snapshot was served
                state = load(into.getvalue()[:-DIGEST_BYTES])
                store = state.store
                kvs = [store.get(k.encode()) for k in keys]
                assert all(kv is not None for kv in kvs)
                assert {kv.value for kv in kvs if kv} == {kvs[0].value if kvs[0] else b""}
                assert {kv.mod_revision for kv in kvs if kv} == {store.revision}
                for revision in range(store.first_revision, store.revision + 1):
                    assert store.events_at(revision), f"revision {revision} has no events in the snapshot"
    finally:
        stop.set()
        thread.join(WAIT)
    assert overlapped, "no snapshot overlapped a write: the test proved nothing"


def test_the_store_view_is_released_once_the_snapshot_is_made(tmp_path: Path) -> None:
    """In process (a member built but not started: the route needs only the state machine): the view the
    snapshot reads is released when it is done, so compacted memory is reclaimed again."""
    server = CorralServer(ServerConfig(data_dir=tmp_path / "data"))
    state = server.state
    state.apply_command(LeaseGrantRequest(7, 60))
    for i in range(50):
        state.apply_command(PutRequest(b"k", str(i).encode(), lease=7 if i % 2 else 0))
    app = create_app(server)

    async def snapshot() -> list[bytes]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:2379") as client:
            response = await client.post("/v3/maintenance/snapshot", content=b"{}")
            return response.content.splitlines()

    lines = asyncio.run(snapshot())
    assert state.store._views == 0
    data = b"".join(base64.b64decode(json.loads(line)["result"]["blob"]) for line in lines[:-1])
    restored = load(data)
    assert restored.store.get(b"k") == state.store.get(b"k") and restored.leases.items() == [(7, 60)]


def test_the_view_is_released_when_the_client_goes_away_or_the_request_is_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process, on the raw ASGI route: a client gone before the snapshot is made gets nothing sent, and
    a request cancelled while its snapshot is being serialized keeps the view until the worker thread is
    done with it (the store must not reclaim what the thread reads), then releases it."""
    server = CorralServer(ServerConfig(data_dir=tmp_path / "data"))
    for i in range(100):
        server.state.apply_command(PutRequest(f"k{i}".encode(), b"v" * 100))
    app = create_app(server)
    scope = {"type": "http", "method": "POST", "path": "/v3/maintenance/snapshot", "headers": []}
    serialize, proceed = KVSnapshot.serialize, threading.Event()

    def held_serialize(self: KVSnapshot) -> bytes:
        assert proceed.wait(WAIT)
        return serialize(self)

    monkeypatch.setattr(KVSnapshot, "serialize", held_serialize)

    async def run() -> None:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        def client(gone: asyncio.Event) -> Callable[[], Awaitable[dict[str, Any]]]:
            body = [{"type": "http.request", "body": b"{}", "more_body": False}]

            async def receive() -> dict[str, Any]:
                if body:
                    return body.pop()
                await gone.wait()
                return {"type": "http.disconnect"}

            return receive

        # cancelled mid-way: the view stays taken while the thread may read it, then is released
        task = asyncio.create_task(app(scope, client(asyncio.Event()), send))
        while server.state.store._views == 0:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        assert server.state.store._views == 1, "released while the worker thread may still read the view"
        proceed.set()
        for _ in range(int(WAIT * 100)):
            if server.state.store._views == 0:
                break
            await asyncio.sleep(0.01)
        assert server.state.store._views == 0 and sent == []

        # the client goes away before the snapshot is made: nothing is sent, the view is released
        gone = asyncio.Event()
        gone.set()
        await app(scope, client(gone), send)
        assert sent == [] and server.state.store._views == 0

    asyncio.run(run())
