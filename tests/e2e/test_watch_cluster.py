"""Watches in a three-member cluster: a follower's watchers get what is written through the leader, and a
client whose member is killed resumes on another member from its last revision + 1 with no gap and no
duplicate."""

from __future__ import annotations

import base64
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.e2e.test_cluster import b64, wait_for_leader
from tests.support.servers import ServerProcess
from tests.support.streams import Stream

Json = Any
PREFIX, PREFIX_END = b64("w/"), b64("w0")
KEYS = 8


def alive(members: list[ServerProcess]) -> list[ServerProcess]:
    return [m for m in members if m.proc is not None and m.proc.poll() is None]


def watch(member: ServerProcess, start_revision: int = 0) -> Stream:
    request = {"key": PREFIX, "range_end": PREFIX_END, "prev_kv": True}
    if start_revision:
        request["start_revision"] = str(start_revision)
    stream = Stream.open(member.url, "/v3/watch", [{"create_request": request}])
    stream.wait_for(lambda results: any(r.get("created") for r in results), 10.0, f"created on {member.url}")
    return stream


def events_of(results: list[Json]) -> list[Json]:
    return [event for result in results for event in result.get("events", ())]


def revision_of(event: Json) -> int:
    return int(event["kv"]["mod_revision"])


def value_of(event: Json) -> str:
    return base64.b64decode(event["kv"].get("value", "")).decode()


def reaches(revision: int) -> Any:
    return lambda results: any(revision_of(e) >= revision for e in events_of(results))


@dataclass
class Writer:
    """One thread putting unique values under w/ through whichever member answers; records what was acked
    (value -> revision) and what may or may not have been applied (no answer)."""

    members: list[ServerProcess]
    acked: dict[str, int] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        attempt = 0
        with httpx.Client(timeout=3.0) as client:
            while not self.stop.is_set():
                for member in alive(self.members):
                    value = f"v{attempt}"
                    attempt += 1
                    body = {"key": b64(f"w/{attempt % KEYS}"), "value": b64(value)}
                    try:
                        response = client.post(member.url + "/v3/kv/put", json=body)
                    except httpx.HTTPError:
                        self.unknown.add(value)
                        continue
                    if response.status_code == 200:
                        self.acked[value] = int(response.json()["header"]["revision"])
                        break
                    if response.status_code != 503:  # no leader / timed out: expected while electing
                        self.failures.append(f"{member.url}: [{response.status_code}] {response.text}")
                    self.unknown.add(value)  # a timed-out proposal may still be applied
                else:
                    time.sleep(0.05)
                time.sleep(0.005)


def test_a_follower_watch_gets_leader_writes_and_a_resumed_watch_has_no_gap(cluster: list[ServerProcess]) -> None:
    leader = wait_for_leader(cluster)
    follower, other = (m for m in cluster if m is not leader)
    streams: list[Stream] = []
    writer = Writer(cluster)
    thread = threading.Thread(target=writer.run, daemon=True)
    try:
        # A watch on a follower gets a write made through the leader.
        on_follower = watch(follower)
        streams.append(on_follower)
        response = httpx.post(leader.url + "/v3/kv/put", json={"key": b64("w/first"), "value": b64("v-first")})
        assert response.status_code == 200, response.text
        first = int(response.json()["header"]["revision"])
        on_follower.wait_for(reaches(first), 5.0, "the follower's watcher: the leader's write")
        (event,) = events_of(on_follower.snapshot())
        assert (revision_of(event), value_of(event)) == (first, "v-first")

        # A client watches the leader while a writer runs; the leader is killed; the client resumes on
        # another member from the last revision it saw + 1.
        on_leader = watch(leader, start_revision=first)
        streams.append(on_leader)
        thread.start()
        deadline = time.monotonic() + 10.0
        while len(writer.acked) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(writer.acked) >= 100, f"only {len(writer.acked)} writes acknowledged: {writer.failures[:3]}"
        leader.kill(signal.SIGKILL)
        on_leader.wait_eof(5.0)
        before = events_of(on_leader.snapshot())
        assert before, "the client saw nothing before the kill"
        resumed = watch(other, start_revision=revision_of(before[-1]) + 1)
        streams.append(resumed)
        wait_for_leader([follower, other], timeout=15.0)
        acked_at_kill = len(writer.acked)
        deadline = time.monotonic() + 15.0
        while len(writer.acked) < acked_at_kill + 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        writer.stop.set()
        thread.join(10.0)
        assert len(writer.acked) >= acked_at_kill + 100, f"writes did not resume: {writer.failures[:3]}"
        assert not writer.failures, writer.failures[:5]

        # Every watcher reaches the last revision; the full history comes from a fresh watch from the start.
        last = int(httpx.post(other.url + "/v3/kv/range", json={"key": PREFIX}).json()["header"]["revision"])
        full_stream = watch(follower, start_revision=first)
        streams.append(full_stream)
        for name, stream in (("full", full_stream), ("follower", on_follower), ("resumed", resumed)):
            stream.wait_for(reaches(last), 15.0, f"the {name} watcher: revision {last}")
        full = events_of(full_stream.snapshot())
        revisions = [revision_of(e) for e in full]
        assert revisions == list(range(first, last + 1)), "the history under w/ is not one write per revision"
        values = [value_of(e) for e in full]
        assert len(set(values)) == len(values), "a value was written twice"
        history = {value: revision_of(e) for value, e in zip(values, full, strict=True)}
        assert {v: history.get(v) for v in writer.acked} == writer.acked, "an acknowledged write is missing"
        assert set(history) <= {"v-first", *writer.acked, *writer.unknown}, "a value nobody wrote"

        after = events_of(resumed.snapshot())
        assert after and revision_of(after[0]) == revision_of(before[-1]) + 1, "a gap at the resumption"
        assert before + after == full, "the resumed client's events differ from the history"
        assert events_of(on_follower.snapshot()) == full, "the follower's watcher missed or repeated events"
    finally:
        writer.stop.set()
        for stream in streams:
            stream.close()
