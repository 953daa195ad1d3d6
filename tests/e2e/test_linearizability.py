"""Linearizability of a client history recorded on a three-member cluster under faults.

Six clients write, read (linearizable) and compare-and-swap a few keys on random members while the leader is
killed and restarted, paused (SIGSTOP) and partitioned away. Afterwards the history must pass the checker in
`tests/support/linearizability.py`, every acknowledged write must be readable at its revision on every member,
and all members must hold the same data. `CORRAL_LIN_SEED` picks the clients' random choices; the history is
written to `history.jsonl` in the test's tmp_path (times in ns since the start, with the member asked).
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.linearizability import CheckTimeout, Op, Outcome, check
from tests.support.servers import ServerProcess, cluster_leader, corral_cluster, member_status

SEED = int(os.environ.get("CORRAL_LIN_SEED", "1"))
KEYS = [f"lin/{i}" for i in range(5)]
CLIENTS = 6
REQUEST_TIMEOUT = 2.0  # short, so faults leave operations with unknown outcomes
# Answers that prove a write was not applied: "no leader" is raised before Raft takes the proposal;
# "leader changed, request not applied" once a newer leader's first entry was applied without it.
NOT_APPLIED = {"etcdserver: no leader", "etcdserver: leader changed, request not applied"}

Recorded = tuple[Op, int, int]  # the op, the revision it wrote (0: none or unknown), the member asked


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def request_body(op: Op) -> tuple[str, dict[str, Any]]:
    key = b64(op.key)
    if op.kind == "write":
        return "/v3/kv/put", {"key": key, "value": b64(str(op.value))}
    if op.kind == "read":
        return "/v3/kv/range", {"key": key}  # linearizable: the default
    compare = {"key": key, "target": "VALUE", "result": "EQUAL", "value": b64(str(op.expected))}
    return "/v3/kv/txn", {"compare": [compare], "success": [{"requestPut": {"key": key, "value": b64(str(op.value))}}]}


def perform(http: httpx.Client, member: ServerProcess, op: Op) -> tuple[Op, int]:
    """Run `op`, stamping its call and return times; return it with its outcome and the revision it wrote."""
    path, body = request_body(op)
    op = replace(op, call=time.monotonic_ns())
    try:
        response = http.post(member.url + path, json=body)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return replace(op, ret=time.monotonic_ns(), outcome=Outcome.FAILED), 0  # nothing was sent
    except httpx.HTTPError:
        return replace(op, outcome=Outcome.UNKNOWN), 0  # sent: it may take effect, now or later, or never
    ret = time.monotonic_ns()
    if response.status_code != 200:
        try:
            message = response.json().get("message")
        except ValueError:
            message = None
        known = response.status_code == 503 and message in NOT_APPLIED
        return replace(op, ret=ret, outcome=Outcome.FAILED if known else Outcome.UNKNOWN), 0
    answer = response.json()
    revision = int(answer["header"]["revision"])
    if op.kind == "read":
        kvs = answer.get("kvs")
        return replace(op, ret=ret, result=unb64(kvs[0]["value"]) if kvs else None), 0
    if op.kind == "cas":
        succeeded = bool(answer.get("succeeded"))
        return replace(op, ret=ret, result=succeeded), revision if succeeded else 0
    return replace(op, ret=ret), revision


def client(
    number: int, members: list[ServerProcess], stop: threading.Event, out: list[Recorded], errors: list[str]
) -> None:
    """Random operations on random members until `stop`; a CAS expects the last value this client saw."""
    try:
        run_client(number, members, stop, out)
    except Exception as exc:  # noqa: BLE001 - reported by the test, not lost with the thread
        errors.append(f"client {number}: {exc!r}")


def run_client(number: int, members: list[ServerProcess], stop: threading.Event, out: list[Recorded]) -> None:
    rng = random.Random(SEED * 1000 + number)
    last: dict[str, str] = {}
    with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
        for count in range(1_000_000):
            if stop.is_set():
                return
            key, target, roll, value = rng.choice(KEYS), rng.randrange(len(members)), rng.random(), f"c{number}.{count}"
            if roll < 0.4:
                op = Op("write", key, 0, None, value=value, client=number)
            elif roll < 0.8 or key not in last:
                op = Op("read", key, 0, None, client=number)
            else:
                op = Op("cas", key, 0, None, value=value, expected=last[key], client=number)
            done, revision = perform(http, members[target], op)
            out.append((done, revision, target))
            seen = done.result if op.kind == "read" else op.value if op.kind == "write" or done.result else None
            if done.outcome is Outcome.OK and isinstance(seen, str):
                last[key] = seen
            time.sleep(0.002 if done.outcome is Outcome.OK else 0.05)


def post(member: ServerProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(member.url + path, json=body, timeout=5.0)
    assert response.status_code == 200, (member.url, path, response.text)
    answer: dict[str, Any] = response.json()
    return answer


def inject_faults(members: list[ServerProcess], log: list[str], origin: int) -> None:
    """Kill -9 and restart the leader, pause it for 3 s, then partition it away for 3 s, waiting each time for a
    leader all members agree on. `log` gets each step, in seconds since `origin` (monotonic ns)."""

    def note(event: str) -> None:
        log.append(f"{(time.monotonic_ns() - origin) / 1e9:6.2f}s {event}")

    def leader_index() -> int:
        return members.index(cluster_leader(members)[0])

    ids = [str(post(m, "/v3/maintenance/status", {})["header"]["member_id"]) for m in members]
    time.sleep(1.5)
    leader = members[leader_index()]
    note(f"kill -9 leader m{members.index(leader)}")
    leader.kill(signal.SIGKILL)
    time.sleep(1.0)
    note(f"restarting m{members.index(leader)}")
    leader.start(timeout=20.0)
    note(f"restarted; leader m{leader_index()}")
    time.sleep(1.0)
    leader = members[leader_index()]
    assert leader.proc is not None
    note(f"SIGSTOP leader m{members.index(leader)}")
    leader.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(3.0)
    finally:
        leader.proc.send_signal(signal.SIGCONT)
        note("SIGCONT")
    note(f"leader m{leader_index()}")
    time.sleep(1.0)
    at = leader_index()
    note(f"partition leader m{at} from the others (both directions)")
    try:
        post(members[at], "/corral/faults/partition", {"peers": [i for n, i in enumerate(ids) if n != at]})
        for n, member in enumerate(members):
            if n != at:
                post(member, "/corral/faults/partition", {"peers": [ids[at]]})
        time.sleep(3.0)
    finally:
        for member in members:
            post(member, "/corral/faults/partition", {"peers": []})
        note("healed")
    note(f"leader m{leader_index()}")
    time.sleep(1.0)


def quiesce(members: list[ServerProcess], timeout: float = 15.0) -> None:
    """Wait until all members report the same revision, log index and applied index."""
    deadline = time.monotonic() + timeout
    reports: list[dict[str, object] | None] = []
    while time.monotonic() < deadline:
        reports = [member_status(m) for m in members]
        marks = {
            (r["header"]["revision"], r.get("raftAppliedIndex"), r.get("raftIndex")) if r else None  # type: ignore[index]
            for r in reports
        }
        if len(marks) == 1 and None not in marks:
            return
        time.sleep(0.1)
    raise AssertionError(f"members did not converge within {timeout}s: {reports}")


def everything(member: ServerProcess) -> list[tuple[str, ...]]:
    """Every key `member` holds locally (a serializable read), with its revisions and version."""
    answer = post(member, "/v3/kv/range", {"key": b64("\0"), "range_end": b64("\0"), "serializable": True})
    fields = ("create_revision", "mod_revision", "version")
    return [(unb64(kv["key"]), unb64(kv["value"]), *(kv[f] for f in fields)) for kv in answer.get("kvs", [])]


def unreadable_writes(member: ServerProcess, acked: list[tuple[Op, int]]) -> list[str]:
    """Acknowledged writes `member` does not show at their revision (serializable ranges, 100 to a txn)."""
    missing = []
    for start in range(0, len(acked), 100):
        batch = acked[start : start + 100]
        ranges = [{"requestRange": {"key": b64(op.key), "revision": rev, "serializable": True}} for op, rev in batch]
        responses = post(member, "/v3/kv/txn", {"success": ranges})["responses"]
        for (op, revision), response in zip(batch, responses, strict=True):
            kvs = response["response_range"].get("kvs") or []
            if not kvs or unb64(kvs[0]["value"]) != op.value or int(kvs[0]["mod_revision"]) != revision:
                missing.append(f"{op.describe()} at revision {revision}: {member.url} has {kvs}")
    return missing


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    members = corral_cluster(tmp_path, 3, extra=["--experimental-fault-injection"])
    for member in members:
        member.spawn()
    try:
        for member in members:
            member.wait_healthy(20.0)
        yield members
    finally:
        for member in members:
            if member.proc is not None and member.proc.poll() is None:
                member.proc.send_signal(signal.SIGCONT)
            member.kill()


def test_a_history_recorded_under_faults_is_linearizable_and_replicas_agree(
    cluster: list[ServerProcess], tmp_path: Path
) -> None:
    outputs: list[list[Recorded]] = [[] for _ in range(CLIENTS)]
    stop = threading.Event()
    errors: list[str] = []
    threads = [threading.Thread(target=client, args=(n, cluster, stop, outputs[n], errors)) for n in range(CLIENTS)]
    faults: list[str] = []
    origin = time.monotonic_ns()
    for thread in threads:
        thread.start()
    try:
        inject_faults(cluster, faults, origin)
    finally:
        stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT + 5.0)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors

    cluster_leader(cluster)
    quiesce(cluster)
    recorded = [entry for output in outputs for entry in output]
    with httpx.Client(timeout=5.0) as http:  # a final linearizable read of every key on every member
        for n, member in enumerate(cluster):
            for key in KEYS:
                final, _ = perform(http, member, Op("read", key, 0, None, client=100 + n))
                assert final.outcome is Outcome.OK, final
                recorded.append((final, 0, n))
    history = [op for op, _, _ in recorded]
    path = tmp_path / "history.jsonl"
    with path.open("w") as out:
        for op, _, member_index in recorded:
            times = {"call": op.call - origin, "ret": None if op.ret is None else op.ret - origin}
            out.write(json.dumps({**asdict(op), **times, "outcome": op.outcome.value, "member": member_index}) + "\n")
    counts = Counter(f"{op.kind}:{op.outcome.value}" for op in history)
    summary = f"seed {SEED}; {len(history)} ops {dict(sorted(counts.items()))}\nfaults:\n" + "\n".join(faults)
    print(summary)
    assert counts["write:ok"] > 100 and counts["read:ok"] > 100 and counts["cas:ok"] > 30, summary

    started = time.monotonic()
    try:
        result = check(history, budget_s=30.0, origin=origin)
    except CheckTimeout as exc:
        pytest.fail(f"linearizability check inconclusive: {exc}\n{summary}\nhistory: {path}")
    print(f"checked {result.ops_checked} ops in {time.monotonic() - started:.2f}s")
    assert result.ok, f"{result.explanation}\n{summary}\nhistory: {path}"

    acked = [(op, revision) for op, revision, _ in recorded if revision]
    for member in cluster:
        missing = unreadable_writes(member, acked)
        assert not missing, "\n".join(missing[:10])
    contents = [everything(member) for member in cluster]
    assert len(contents[0]) == len(KEYS) and all(c == contents[0] for c in contents), contents
