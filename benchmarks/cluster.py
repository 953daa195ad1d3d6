"""Cluster-only parts of the benchmark (`python -m benchmarks.run --cluster N`): which member wrk drives,
replication checks, and the failover measurement (kill -9 of the leader -> first put acknowledged after it).

This module does not import `benchmarks.run` (which runs as `__main__`); run.py imports it.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from tests.support.servers import ServerProcess, cluster_leader, member_status

REPLICATION_TIMEOUT = 30.0  # seconds for every member to apply what the leader has
RESTART_TIMEOUT = 30.0  # seconds for a killed member to answer /health again after its restart
# Failover writer: a put is started every FAILOVER_PACE_S, alternating between the followers, whether or not
# earlier ones have answered, each with a FAILOVER_REQUEST_TIMEOUT_S timeout. A put sent to a follower that
# still forwards to the dead leader hangs until its timeout; a new one is already on its way, so the first
# acknowledgement after the kill is seen within one pace of the cluster taking writes again.
FAILOVER_PACE_S = 0.01
FAILOVER_REQUEST_TIMEOUT_S = 1.0
FAILOVER_STEADY_S = 1.0  # writer runs this long before the kill (and must get acks) to reach steady state
FAILOVER_DEADLINE_S = 30.0  # no acknowledged put this long after the kill: the repeat failed
PROBE_KEY = base64.b64encode(b"bench/00000000").decode()
FAILOVER_KEY_PREFIX = "bench-failover/"


# --- member state -----------------------------------------------------------------------------------------


def leader_id(client: httpx.Client) -> str:
    """The leader's member ID as the member behind `client` sees it ("0": none known)."""
    r = client.post("/v3/maintenance/status", json={})
    r.raise_for_status()
    return str(r.json().get("leader", "0"))


def member_id(member: ServerProcess) -> str:
    status = member_status(member, timeout=5.0)
    header = status.get("header", {}) if status else {}
    return str(header.get("member_id", "")) if isinstance(header, dict) else ""


def local_revision(client: httpx.Client) -> int:
    """The revision this member has applied (a serializable read answers from local state, no ReadIndex)."""
    r = client.post("/v3/kv/range", json={"key": PROBE_KEY, "count_only": True, "serializable": True})
    r.raise_for_status()
    return int(r.json()["header"]["revision"])


def linearizable_revision(client: httpx.Client) -> int:
    r = client.post("/v3/kv/range", json={"key": PROBE_KEY, "count_only": True})
    r.raise_for_status()
    return int(r.json()["header"]["revision"])


def pick_follower(members: list[ServerProcess], leader: ServerProcess) -> ServerProcess:
    """The follower wrk drives for the `via: follower` points: the first non-leader by name (n1, n2, ...)."""
    return min((m for m in members if m is not leader), key=lambda m: m.data_dir.name)


def describe(member: ServerProcess, mid: str | None = None) -> dict[str, str]:
    return {"name": member.data_dir.name, "member_id": mid if mid is not None else member_id(member), "url": member.url}


def check_replicated(
    leader: ServerProcess, members: list[ServerProcess], timeout: float = REPLICATION_TIMEOUT
) -> dict[str, int]:
    """Every member applies everything the leader has now (a cluster that acknowledges puts without
    replicating them is not a cluster). Returns each member's applied revision by name."""
    with httpx.Client(base_url=leader.url, timeout=10.0) as client:
        target_revision = linearizable_revision(client)
    applied: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    for member in members:
        with httpx.Client(base_url=member.url, timeout=10.0) as client:
            while (got := local_revision(client)) < target_revision and time.monotonic() < deadline:
                time.sleep(0.1)
        applied[member.data_dir.name] = got
    behind = {name: rev for name, rev in applied.items() if rev < target_revision}
    if behind:
        raise RuntimeError(f"members {behind} had not applied revision {target_revision} {timeout:.0f} s later")
    return applied


# --- failover ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FailoverRun:
    """One kill -9 of the leader, as written to the results JSON (`targets.<target>.failover.runs`)."""

    repeat: int
    killed: str  # name of the member that led and was killed
    new_leader: str | None = None
    seconds: float | None = None  # kill -> first put acknowledged (HTTP 200) among puts sent after the kill
    term_before: int | None = None
    term_after: int | None = None  # raft_term in the header of that first acknowledgement
    puts_before_kill: int = 0  # acknowledged during the steady-state second before the kill
    sent_after_kill: int = 0  # puts sent after the kill up to and including the first acknowledged one
    # Of those, the ones that had failed when the writer stopped (right after that acknowledgement), by kind
    # ("timeout", "http 503", ...); the rest were still waiting and were abandoned.
    failed_after_kill: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Writer:
    """Paced open-loop puts through `urls`; records the first acknowledgement of a put sent after `killed_at`."""

    urls: list[str]
    value: str
    killed_at: float | None = None
    acked_before_kill: int = 0
    first_ack: tuple[float, float, dict[str, object]] | None = None  # (sent, acked, response header)
    sent_after_kill: list[float] = field(default_factory=list)
    failures_after_kill: list[tuple[float, str]] = field(default_factory=list)  # (sent, kind)
    acked_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def attempt(self, client: httpx.AsyncClient, n: int) -> None:
        url = self.urls[n % len(self.urls)]
        body = {"key": base64.b64encode(f"{FAILOVER_KEY_PREFIX}{n % 64:02d}".encode()).decode(), "value": self.value}
        sent = time.monotonic()
        after_kill = self.killed_at is not None and sent >= self.killed_at
        if after_kill:
            self.sent_after_kill.append(sent)
        try:
            r = await client.post(url + "/v3/kv/put", json=body)
        except httpx.TimeoutException:
            kind = "timeout"
        except httpx.HTTPError as exc:
            kind = type(exc).__name__
        else:
            acked = time.monotonic()
            if r.status_code == 200:
                if not after_kill:
                    self.acked_before_kill += 1
                elif self.first_ack is None or acked < self.first_ack[1]:
                    self.first_ack = (sent, acked, r.json().get("header", {}))
                    self.acked_event.set()
                return
            kind = f"http {r.status_code}"
        if after_kill:
            self.failures_after_kill.append((sent, kind))

    async def run(self, stop: asyncio.Event) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=FAILOVER_REQUEST_TIMEOUT_S, limits=limits) as client:
            tasks: set[asyncio.Task[None]] = set()
            n, start = 0, time.monotonic()
            while not stop.is_set():
                task = asyncio.create_task(self.attempt(client, n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
                # Paced against the start time, so a slow iteration does not stretch the schedule; if the loop
                # fell behind by more than one pace, start again from now rather than sending a burst.
                delay = start + n * FAILOVER_PACE_S - time.monotonic()
                if delay < -FAILOVER_PACE_S:
                    start, delay = time.monotonic() - n * FAILOVER_PACE_S, 0.0
                await asyncio.sleep(max(0.0, delay))
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _kill_leader_under_writes(
    leader: ServerProcess, survivors: list[ServerProcess], value: str, run: FailoverRun
) -> None:
    writer = _Writer(urls=[m.url for m in survivors], value=value)
    stop = asyncio.Event()
    writing = asyncio.create_task(writer.run(stop))
    try:
        await asyncio.sleep(FAILOVER_STEADY_S)
        run.puts_before_kill = writer.acked_before_kill
        if writer.acked_before_kill == 0:
            run.problems.append("no put was acknowledged before the kill")
            return
        assert leader.proc is not None
        leader.proc.kill()  # SIGKILL
        writer.killed_at = time.monotonic()  # after the signal: no put counted here can reach the old leader
        await asyncio.to_thread(leader.proc.wait, 10)
        try:
            await asyncio.wait_for(writer.acked_event.wait(), FAILOVER_DEADLINE_S)
        except TimeoutError:
            run.problems.append(f"no put acknowledged within {FAILOVER_DEADLINE_S:.0f} s of the kill")
            return
    finally:
        stop.set()
        await writing
    assert writer.first_ack is not None and writer.killed_at is not None
    sent, acked, header = writer.first_ack
    run.seconds = round(acked - writer.killed_at, 3)
    run.term_after = int(str(header.get("raft_term", 0)))
    run.sent_after_kill = sum(1 for t in writer.sent_after_kill if t <= sent)
    failed: dict[str, int] = {}
    for t, kind in writer.failures_after_kill:
        if t <= sent:
            failed[kind] = failed.get(kind, 0) + 1
    run.failed_after_kill = failed


def _term(member: ServerProcess) -> int | None:
    status = member_status(member, timeout=5.0)
    header = status.get("header", {}) if status else None
    return int(str(header.get("raft_term", 0))) if isinstance(header, dict) else None


def _failover_once(members: list[ServerProcess], repeat: int, value: str, runs: list[FailoverRun]) -> None:
    """One repeat (appended to `runs` as soon as it starts), ending with the cluster whole and caught up."""
    leader, _ = cluster_leader(members)
    survivors = [m for m in members if m is not leader]
    run = FailoverRun(repeat=repeat, killed=leader.data_dir.name, term_before=_term(leader))
    runs.append(run)
    asyncio.run(_kill_leader_under_writes(leader, survivors, value, run))
    if run.seconds is not None:
        try:
            new_leader, _ = cluster_leader(survivors)
            run.new_leader = new_leader.data_dir.name
        except RuntimeError as exc:
            run.problems.append(str(exc))
        if run.term_before is not None and run.term_after is not None and run.term_after <= run.term_before:
            run.problems.append(f"first acknowledged put has term {run.term_after}, not above {run.term_before}")
    leader.restart(RESTART_TIMEOUT)  # kill (a no-op if already dead), spawn, wait for /health
    current, _ = cluster_leader(members)
    check_replicated(current, members)


def measure_failover(members: list[ServerProcess], repeats: int, value: str) -> dict[str, Any]:
    """`repeats` times: with the paced writer putting through the followers, kill -9 the leader and time the
    first acknowledged put sent after the kill; note who leads then; restart the killed member and wait until
    it is healthy and has applied everything before the next repeat. Returns the JSON for the results."""
    runs: list[FailoverRun] = []
    error = None
    try:
        for repeat in range(1, repeats + 1):
            _failover_once(members, repeat, value, runs)
    except Exception as exc:  # keep the repeats already measured
        error = f"{type(exc).__name__}: {exc}"
    times = [r.seconds for r in runs if r.seconds is not None]
    return {
        "repeats": repeats,
        "pace_s": FAILOVER_PACE_S,
        "request_timeout_s": FAILOVER_REQUEST_TIMEOUT_S,
        "median_s": round(statistics.median(times), 3) if times else None,
        "runs": [asdict(r) for r in runs],
        **({"error": error} if error else {}),
        "flagged": bool(error) or any(r.problems for r in runs) or len(times) < repeats,
    }


def failover_flagged(info: dict[str, object]) -> bool:
    failover = info.get("failover")
    return isinstance(failover, dict) and bool(failover.get("flagged") or failover.get("error"))


def failover_summary(target: str, failover: dict[str, Any]) -> str:
    """One progress line for stderr."""
    runs = []
    for r in failover.get("runs", []):
        problems = f" PROBLEMS: {'; '.join(r['problems'])}" if r["problems"] else ""
        runs.append(f"{r['seconds']} s ({r['killed']} -> {r['new_leader']}){problems}")
    error = f"; FAILED: {failover['error']}" if "error" in failover else ""
    return f"{target:>6} failover: {'; '.join(runs)}; median {failover.get('median_s')} s{error}"


def render_failover(targets: dict[str, dict[str, object]], order: list[str]) -> list[str]:
    """Markdown lines for the failover table (empty if no target measured it)."""
    measured: dict[str, dict[str, Any]] = {}
    for target in order:
        failover = targets.get(target, {}).get("failover")
        if isinstance(failover, dict):
            measured[target] = failover
    if not measured:
        return []
    repeats = max(len(f.get("runs", [])) for f in measured.values())
    head = ["target", *(f"kill #{i + 1}: s (killed → new leader)" for i in range(repeats)), "median s"]
    rows = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    notes: list[str] = []
    for target, failover in measured.items():
        if "error" in failover:
            notes.append(f"- {target}: {str(failover['error']).splitlines()[0]}")
        cells = []
        for run in failover.get("runs", []):
            took = f"{run['seconds']:.2f}" if run["seconds"] is not None else "—"
            cells.append(f"{took} ({run['killed']} → {run['new_leader'] or '?'})" + (" ⚠" if run["problems"] else ""))
            notes += [f"- {target} kill #{run['repeat']}: {p}" for p in run["problems"]]
        cells += ["—"] * (repeats - len(cells))
        median = f"{failover['median_s']:.2f}" if failover.get("median_s") is not None else "—"
        rows.append(f"| {target} | " + " | ".join([*cells, median]) + " |")
    intro = (
        f"Failover: kill -9 of the leader, then the time until the first put sent after the kill is acknowledged "
        f"(HTTP 200); puts go through the surviving members, one every {FAILOVER_PACE_S * 1000:.0f} ms "
        f"({FAILOVER_REQUEST_TIMEOUT_S:.0f} s timeout each); the killed member is restarted and caught up "
        "between kills. Election timeout 1 s (the default) for both."
    )
    lines = ["", intro, "", *rows]
    if notes:
        lines += ["", "⚠ failover problems:", *notes]
    return lines
