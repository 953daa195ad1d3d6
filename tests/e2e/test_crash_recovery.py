"""Crash safety of a real Corral process: SIGKILL mid-burst, torn and corrupted WAL tails.

The guarantee under test: a put that was answered 200 is durable. After any crash the restarted server
holds every acknowledged put with exactly the revision its answer reported; an unanswered put either
landed whole or not at all; revisions stay dense (each one from 2 to the current revision belongs to
exactly one put); and new writes continue from there. Every test bounds its loops by count and time.
"""

from __future__ import annotations

import base64
import random
import shutil
import signal
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.servers import ServerProcess, corral_process

WORKERS = 8  # writer threads, one connection and one put in flight each
BURST_SECONDS = 1.5  # how long a burst would run if nothing killed the server
KILL_WINDOW = (0.5, 1.0)  # the SIGKILL lands this many seconds into the burst
CYCLES = 3
SNAPSHOT_COUNT = "200"  # small enough that even a slow machine snapshots and trims the WAL every cycle
TIMEOUT = httpx.Timeout(10.0)
RECORD_HEADER = struct.Struct("<II")  # body length, crc32(body): the WAL's record framing
ENTRY_KIND = 1


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@dataclass
class Burst:
    """What the clients saw: acknowledged puts (value, revision) and puts that got no answer."""

    acked: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    unacked: dict[bytes, bytes] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def servers(data_dir: Path) -> Iterator[list[ServerProcess]]:
    """Servers created by a test are appended here and killed afterwards, whatever happened."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill()


def new_server(servers: list[ServerProcess], data_dir: Path, extra: list[str] | None = None) -> ServerProcess:
    server = corral_process(data_dir, extra=extra)
    servers.append(server)
    server.start()
    return server


# -- client side --------------------------------------------------------------------------------------


def _burst(server: ServerProcess, tag: str, kill_at: float) -> Burst:
    """Puts of distinct keys from WORKERS threads until the server is SIGKILLed `kill_at` seconds in."""
    burst = Burst()
    lock = threading.Lock()
    killed = threading.Event()
    deadline = time.monotonic() + BURST_SECONDS

    def worker(w: int) -> None:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            for n in range(1_000_000):
                if killed.is_set() or time.monotonic() > deadline:
                    return
                key = f"crash/{tag}/{w:02d}/{n:06d}".encode()
                value = f"{tag}:{w}:{n}".encode()
                try:
                    response = client.post("/v3/kv/put", json={"key": b64(key), "value": b64(value)})
                except httpx.HTTPError:
                    with lock:
                        burst.unacked[key] = value
                    continue
                with lock:
                    if response.status_code == 200:
                        burst.acked[key] = (value, int(response.json()["header"]["revision"]))
                    else:
                        burst.unacked[key] = value
                        burst.rejected.append(f"{response.status_code} {response.text}")

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    time.sleep(kill_at)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    killed.set()
    for thread in threads:
        thread.join(timeout=TIMEOUT.read or 10.0)
    assert not any(thread.is_alive() for thread in threads), "a writer did not stop after the kill"
    server.kill()  # reap the process
    return burst


def all_kvs(client: httpx.Client) -> tuple[int, dict[bytes, dict[str, str]]]:
    """(current revision, every key in the store)."""
    response = client.post("/v3/kv/range", json={"key": b64(b"\0"), "range_end": b64(b"\0")})
    assert response.status_code == 200, response.text
    body = response.json()
    return int(body["header"]["revision"]), {unb64(kv["key"]): kv for kv in body.get("kvs", [])}


def check_store(
    client: httpx.Client, acked: dict[bytes, tuple[bytes, int]], unacked: dict[bytes, bytes]
) -> tuple[int, dict[bytes, int]]:
    """Every acked put is there as acknowledged; nothing else but unacked puts; revisions are dense.

    Every write in these tests is a put of a key never written before, so each key's mod_revision
    names the one revision its put made. Returns the current revision and the unacked puts that
    landed, with their revisions.
    """
    current, kvs = all_kvs(client)
    missing = [key for key in acked if key not in kvs]
    assert not missing, f"{len(missing)} acknowledged puts lost, e.g. {missing[:3]} (revision now {current})"
    for key, (value, rev) in acked.items():
        kv = kvs[key]
        assert unb64(kv.get("value", "")) == value, key
        assert kv["mod_revision"] == kv["create_revision"] == str(rev), (key, kv, rev)
        assert kv["version"] == "1", (key, kv)
    landed = set(kvs) - set(acked)
    strangers = landed - set(unacked)
    assert not strangers, f"keys nobody wrote: {sorted(strangers)[:3]}"
    for key in landed:
        assert unb64(kvs[key].get("value", "")) == unacked[key], key
        assert kvs[key]["version"] == "1"
    revisions = sorted(int(kv["mod_revision"]) for kv in kvs.values())
    assert revisions == list(range(2, current + 1)), "revisions are not dense: " + _gaps(revisions, current)
    return current, {key: int(kvs[key]["mod_revision"]) for key in landed}


def _gaps(revisions: list[int], current: int) -> str:
    seen = set(revisions)
    dupes = len(revisions) - len(seen)
    holes = [r for r in range(2, current + 1) if r not in seen]
    return f"{dupes} duplicated, {len(holes)} missing (first {holes[:5]}), current {current}"


def put(client: httpx.Client, key: bytes, value: bytes) -> int:
    response = client.post("/v3/kv/put", json={"key": b64(key), "value": b64(value)})
    assert response.status_code == 200, response.text
    return int(response.json()["header"]["revision"])


# -- (a), (b): SIGKILL during a burst of concurrent writes --------------------------------------------


def _kill_restart_cycles(servers: list[ServerProcess], data_dir: Path, extra: list[str]) -> None:
    server = new_server(servers, data_dir, extra)
    rng = random.Random(20_24)
    acked: dict[bytes, tuple[bytes, int]] = {}
    unacked: dict[bytes, bytes] = {}
    for cycle in range(CYCLES):
        kill_at = rng.uniform(*KILL_WINDOW)
        burst = _burst(server, f"c{cycle}", kill_at)
        assert not burst.rejected, f"puts rejected before the kill: {burst.rejected[:3]}"
        assert len(burst.acked) >= 20, f"cycle {cycle}: only {len(burst.acked)} puts acked before the kill"
        revisions = [rev for _, rev in burst.acked.values()]
        assert len(set(revisions)) == len(revisions), "two puts acknowledged with the same revision"
        acked.update(burst.acked)
        unacked.update(burst.unacked)

        server.start()
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            current, landed = check_store(client, acked, unacked)
            # An unacknowledged put that landed has been read back: from now on it must survive crashes.
            for key, rev in landed.items():
                acked[key] = (unacked.pop(key), rev)
            probe = f"probe/{cycle}".encode()
            assert put(client, probe, b"after restart") == current + 1  # writes continue from there
            acked[probe] = (b"after restart", current + 1)


@pytest.mark.timeout(60)
def test_sigkill_during_concurrent_writes_loses_no_acknowledged_put(
    servers: list[ServerProcess], data_dir: Path
) -> None:
    _kill_restart_cycles(servers, data_dir, [])


@pytest.mark.timeout(60)
def test_sigkill_during_writes_with_snapshots_and_wal_trimming(
    servers: list[ServerProcess], data_dir: Path
) -> None:
    _kill_restart_cycles(servers, data_dir, ["--snapshot-count", SNAPSHOT_COUNT])
    snaps = sorted((data_dir / "member" / "snap").glob("*.snap"))
    assert snaps, "no snapshot was taken: the test did not exercise snapshots"
    segments = sorted((data_dir / "member" / "wal").glob("*.wal"))
    assert segments and not segments[0].name.startswith("0" * 16 + "-"), (
        f"the first WAL segment is still there: the WAL was never trimmed ({[p.name for p in segments]})"
    )


# -- (c), (d): damaged WAL tails ------------------------------------------------------------------------


def wal_records(path: Path) -> list[tuple[int, int]]:
    """(offset, total length) of each intact record at the start of a WAL segment file."""
    data = path.read_bytes()
    records = []
    offset = 0
    while offset + RECORD_HEADER.size <= len(data):
        length, crc = RECORD_HEADER.unpack_from(data, offset)
        end = offset + RECORD_HEADER.size + length
        if length == 0 or end > len(data) or zlib.crc32(data[offset + RECORD_HEADER.size : end]) != crc:
            break
        records.append((offset, end - offset))
        offset = end
    assert offset == len(data), f"{path.name} already has a damaged tail at offset {offset}"
    return records


def damage_last_record(wal_dir: Path, damage: str, last_key: bytes) -> None:
    newest = sorted(wal_dir.glob("*.wal"))[-1]
    offset, length = wal_records(newest)[-1]
    data = bytearray(newest.read_bytes())
    body = bytes(data[offset + RECORD_HEADER.size : offset + length])
    assert body[0] == ENTRY_KIND and last_key in body, "the newest record is not the last put"
    middle = offset + RECORD_HEADER.size + len(body) // 2
    if damage == "garbage":
        data += random.Random(7).randbytes(123)
    elif damage == "zeros":
        data += bytes(4096)  # a preallocated or zero-filled tail
    elif damage == "truncate":
        del data[middle:]
    elif damage == "flip":
        data[middle] ^= 0x01
    else:
        raise ValueError(damage)
    newest.write_bytes(bytes(data))


def _torn_tail(servers: list[ServerProcess], data_dir: Path, damage: str) -> None:
    server = new_server(servers, data_dir)
    writes: list[tuple[bytes, bytes, int]] = []
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for i in range(20):
            key, value = f"tail/{i:03d}".encode(), f"value-{i}".encode()
            writes.append((key, value, put(client, key, value)))
    assert [rev for _, _, rev in writes] == list(range(2, 22))
    server.kill()  # every put above was acknowledged, so it is on disk

    damage_last_record(data_dir / "member" / "wal", damage, writes[-1][0])
    lost_last = damage in ("truncate", "flip")
    survivors = writes[:-1] if lost_last else writes
    acked = {key: (value, rev) for key, value, rev in survivors}

    server.start()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        current, landed = check_store(client, acked, {})
        assert current == survivors[-1][2] and not landed
        for i in range(5):  # the log takes new writes right after the last intact record
            key, value = f"after/{i}".encode(), f"after-{i}".encode()
            rev = put(client, key, value)
            assert rev == current + 1 + i
            acked[key] = (value, rev)
    # The repaired log must not leave the new records behind the damage: they survive another crash.
    server.kill()
    server.start()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        check_store(client, acked, {})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", ["garbage", "zeros", "truncate"])
def test_torn_wal_tail_recovers_to_the_last_intact_record(
    servers: list[ServerProcess], data_dir: Path, damage: str
) -> None:
    _torn_tail(servers, data_dir, damage)


@pytest.mark.timeout(60)
def test_crc_corrupted_last_record_recovers_to_the_previous_one(
    servers: list[ServerProcess], data_dir: Path
) -> None:
    _torn_tail(servers, data_dir, "flip")
