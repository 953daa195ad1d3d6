"""Benchmark Corral against etcd through the v3 HTTP/JSON gateway, using wrk on loopback.

`python -m benchmarks.run [--duration S] [--clients 1,16,64] [--targets corral,etcd] [--cluster N] [--profile]`

Each target gets a fresh single-node server with a fresh data directory, or with `--cluster N` (N > 1) a
fresh N-member cluster on loopback, driven through its leader and through a follower (`via`), followed by a
failover measurement (benchmarks/cluster.py). The key space is preloaded, then every (op, clients[, via])
point is a short warm-up followed by a measured wrk run. Results go to
benchmarks/results/<UTC timestamp>.json, and a markdown table goes to stdout and into benchmarks/README.md
(the single-node and cluster tables each between their own markers).
A point with socket errors, HTTP errors, or fewer revisions than acknowledged puts is flagged, and the
exit status is then 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.cluster import (
    check_replicated,
    describe,
    failover_flagged,
    failover_summary,
    leader_id,
    measure_failover,
    pick_follower,
    render_failover,
)
from tests.support.servers import (
    REPO_ROOT,
    ServerProcess,
    cluster_leader,
    corral_cluster,
    corral_process,
    etcd_cluster,
    etcd_process,
)

BENCH_DIR = Path(__file__).resolve().parent
WRK_DIR = BENCH_DIR / "wrk"
README = BENCH_DIR / "README.md"
START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"
CLUSTER_START_MARKER = "<!-- results-cluster:start -->"
CLUSTER_END_MARKER = "<!-- results-cluster:end -->"

TARGETS = ("corral", "etcd")
OPS = ("put", "range")
KEY_PREFIX = "bench/"
VALUE = bytes(range(256))  # 256 bytes; the content is irrelevant, the size is what we measure
RANGE_KEY_INDEX = 0
PRELOAD_BATCH = 100  # puts per txn while preloading; etcd's default --max-txn-ops is 128
PROFILE_CLIENTS = 64
WRK_TIMEOUT = "5s"  # a request slower than this counts as a socket timeout error
STARTUP_TIMEOUT = 30.0  # seconds for a server, or every member of a cluster, to answer /health
VIAS = ("leader", "follower")  # in a cluster, every point is measured through each


@dataclass(frozen=True, slots=True)
class WrkErrors:
    connect: int = 0
    read: int = 0
    write: int = 0
    status: int = 0  # HTTP status > 399
    timeout: int = 0

    @property
    def total(self) -> int:
        return self.connect + self.read + self.write + self.status + self.timeout


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run, as reported by the done() hook in benchmarks/wrk/report.lua."""

    duration_s: float
    requests: int
    errors: WrkErrors
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    output: str

    @property
    def ops_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(slots=True)
class Point:
    """One measured (target, op, clients[, via]) point, as written to the results JSON."""

    target: str
    op: str
    clients: int
    via: str | None  # cluster: "leader" or "follower", the member wrk drives; None (left out) on one node
    threads: int
    ops_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests: int
    duration_s: float
    errors: dict[str, int]
    revision_delta: int | None = None
    problems: list[str] = field(default_factory=list)
    wrk_output: str = ""

    @property
    def flagged(self) -> bool:
        return bool(self.problems)


# --- keys and wire format ---------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def key(i: int) -> bytes:
    """Must match put.lua: the prefix, then the index zero-padded to 8 digits."""
    return f"{KEY_PREFIX}{i:08d}".encode()


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def revision(client: httpx.Client) -> int:
    r = client.post("/v3/kv/range", json={"key": b64(key(RANGE_KEY_INDEX)), "count_only": True})
    r.raise_for_status()
    return int(r.json()["header"]["revision"])


def count_keys(client: httpx.Client) -> int:
    prefix = KEY_PREFIX.encode()
    body = {"key": b64(prefix), "range_end": b64(prefix_end(prefix)), "count_only": True}
    r = client.post("/v3/kv/range", json=body)
    r.raise_for_status()
    return int(r.json().get("count", 0))


def preload(url: str, keys: int) -> str:
    """Write every key once so puts overwrite and ranges hit a populated store. Returns the method used.

    Batches of puts in one txn are much quicker; if the server rejects them, fall back to single puts.
    """
    value = b64(VALUE)
    with httpx.Client(base_url=url, timeout=30.0) as client:
        try:
            for start in range(0, keys, PRELOAD_BATCH):
                ops = [
                    {"requestPut": {"key": b64(key(i)), "value": value}}
                    for i in range(start, min(start + PRELOAD_BATCH, keys))
                ]
                client.post("/v3/kv/txn", json={"success": ops}).raise_for_status()
            if count_keys(client) == keys:
                return "txn"
        except httpx.HTTPError:
            pass

    with httpx.Client(base_url=url, timeout=30.0) as client, ThreadPoolExecutor(16) as pool:

        def put(i: int) -> None:
            client.post("/v3/kv/put", json={"key": b64(key(i)), "value": value}).raise_for_status()

        list(pool.map(put, range(keys)))
        got = count_keys(client)
    if got != keys:
        raise RuntimeError(f"preload wrote {keys} keys but a range counts {got}")
    return "put"


def check_range_key(url: str) -> None:
    """The range point reads this key; make sure the server really returns it, value and all."""
    with httpx.Client(base_url=url, timeout=10.0) as client:
        r = client.post("/v3/kv/range", json={"key": b64(key(RANGE_KEY_INDEX))})
        r.raise_for_status()
        kvs = r.json().get("kvs", [])
    if len(kvs) != 1 or base64.b64decode(kvs[0].get("value", "")) != VALUE:
        raise RuntimeError(f"range of the benchmark key returned {r.text[:300]!r}")


# --- wrk --------------------------------------------------------------------------------------------------


def wrk_command(url: str, op: str, clients: int, duration: int, keys: int) -> list[str]:
    threads = min(2, clients)
    if op == "put":
        script_args = [str(keys), KEY_PREFIX, b64(VALUE)]
    else:
        script_args = [b64(key(RANGE_KEY_INDEX))]
    return [
        "wrk", "-t", str(threads), "-c", str(clients), "-d", f"{duration}s", "--timeout", WRK_TIMEOUT,
        "--latency", "-s", str(WRK_DIR / f"{op}.lua"), f"{url}/v3/kv/{op}", "--", *script_args,
    ]  # fmt: skip


def parse_wrk(output: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT "):
            d = json.loads(line.removeprefix("BENCH_RESULT "))
            break
    else:
        raise RuntimeError(f"wrk printed no BENCH_RESULT line:\n{output}")
    errors = WrkErrors(
        connect=d["connect"], read=d["read"], write=d["write"], status=d["status"], timeout=d["timeout"]
    )
    return WrkResult(
        duration_s=d["duration_us"] / 1e6,
        requests=d["requests"],
        errors=errors,
        p50_ms=d["p50_us"] / 1000,
        p90_ms=d["p90_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        mean_ms=d["mean_us"] / 1000,
        max_ms=d["max_us"] / 1000,
        output=output,
    )


def run_wrk(cmd: list[str], duration: int) -> WrkResult:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return parse_wrk(proc.stdout)


def measure(
    url: str, target: str, op: str, clients: int, args: argparse.Namespace,
    leader: str | None = None, via: str | None = None,
) -> Point:  # fmt: skip
    """One point against `url`. In a cluster `leader` is the leader's member ID when the point starts; the
    member at `url` (the leader itself, or a follower: `via`) must still name it when the point ends, else
    the point measured an election and is flagged."""
    if args.warmup > 0:
        run_wrk(wrk_command(url, op, clients, args.warmup, args.keys), args.warmup)
    with httpx.Client(base_url=url, timeout=10.0) as client:
        before = revision(client)
        result = run_wrk(wrk_command(url, op, clients, args.duration, args.keys), args.duration)
        after = revision(client)
        leader_after = leader_id(client) if leader is not None else None
    problems: list[str] = []
    if leader is not None and leader_after != leader:
        problems.append(f"leader changed during the point (was {leader}, now {leader_after} according to the {via})")
    if result.errors.total:
        problems.append(f"wrk errors {asdict(result.errors)}")
    if result.requests == 0:
        problems.append("no requests completed")
    delta = after - before
    # Every acknowledged put adds one revision; in-flight puts at wrk's stop may add more, never fewer.
    if op == "put" and delta < result.requests - result.errors.status:
        problems.append(f"{result.requests} puts acknowledged but the revision moved by only {delta}")
    return Point(
        target=target,
        op=op,
        clients=clients,
        via=via,
        threads=min(2, clients),
        ops_per_s=round(result.ops_per_s, 1),
        p50_ms=result.p50_ms,
        p90_ms=result.p90_ms,
        p99_ms=result.p99_ms,
        mean_ms=result.mean_ms,
        max_ms=result.max_ms,
        requests=result.requests,
        duration_s=round(result.duration_s, 3),
        errors=asdict(result.errors),
        revision_delta=delta,
        problems=problems,
        wrk_output=result.output,
    )


# --- profiling --------------------------------------------------------------------------------------------


def summarize_raw_profile(raw: str, top: int = 15) -> str:
    """Top functions by own samples (the leaf frame), from py-spy's raw collapsed-stack output.

    Each raw line is `frame;frame;...;leaf count` with frames like `func (file.py:123)`; the line number is
    dropped so a function's samples are added up across its lines.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        # With --subprocesses py-spy roots each stack at a `process PID:"cmdline"` frame; drop it.
        frames = [_function(f) for f in stack.split(";") if not f.startswith("process ")] or ["(no frames)"]
        own[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count
    if total == 0:
        return "no samples\n"
    lines = [f"{total} samples; top {top} functions by own samples", "", "  own %  total %  function"]
    for name, n in own.most_common(top):
        lines.append(f"{100 * n / total:7.1f} {100 * inclusive[name] / total:8.1f}  {name}")
    return "\n".join(lines) + "\n"


def _function(frame: str) -> str:
    name, sep, location = frame.rpartition(" (")
    if not sep:
        return frame
    return f"{name} ({location.rstrip(')').rsplit(':', 1)[0]})"


def profile_put(server: ServerProcess, args: argparse.Namespace, out_dir: Path) -> dict[str, str]:
    """Profile Corral under put load with py-spy, in a separate run so the reported points are unperturbed.

    Two samplers run together (--nonblocking, so neither pauses the server): one writes the flamegraph SVG,
    the other the raw collapsed stacks summarized into a text file.
    """
    assert server.proc is not None
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return {"error": "py-spy not found"}
    stem = out_dir / f"put-{PROFILE_CLIENTS}"
    out_dir.mkdir(parents=True, exist_ok=True)
    pid, seconds = str(server.proc.pid), str(args.duration)
    common = ["record", "--pid", pid, "-d", seconds, "-r", "100", "--nonblocking", "--subprocesses"]
    wrk = subprocess.Popen(
        wrk_command(server.url, "put", PROFILE_CLIENTS, args.duration + 2, args.keys),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    spies: list[subprocess.Popen[bytes]] = []
    try:
        time.sleep(1.0)  # let wrk connect and the load settle before sampling
        spies = [
            subprocess.Popen([spy, *common, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for extra in (["-o", f"{stem}.svg"], ["--format", "raw", "-o", f"{stem}.raw"])
        ]
        spy_out = [p.communicate(timeout=args.duration + 60)[0].decode(errors="replace") for p in spies]
        wrk_out, _ = wrk.communicate(timeout=args.duration + 60)
    finally:
        for proc in [wrk, *spies]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    failed = [out for p, out in zip(spies, spy_out, strict=True) if p.returncode != 0]
    if failed:
        note = f"py-spy failed (on a permission error it needs root or ptrace_scope=0):\n{failed[0]}"
        stem.with_suffix(".txt").write_text(note)
        return {"error": note}
    load = parse_wrk(wrk_out)
    header = (
        f"py-spy record -r 100 --nonblocking, {args.duration} s of Corral under put at {PROFILE_CLIENTS} "
        f"clients ({load.ops_per_s:.0f} ops/s during the profiled run, errors {load.errors.total})\n"
    )
    stem.with_suffix(".txt").write_text(header + summarize_raw_profile(Path(f"{stem}.raw").read_text()))
    return {name: str(Path(f"{stem}.{name}").relative_to(REPO_ROOT)) for name in ("svg", "raw", "txt")}


# --- one target -------------------------------------------------------------------------------------------


def bench_target(target: str, args: argparse.Namespace, tmp: Path, points: list[Point]) -> dict[str, object]:
    """Start a fresh server (or an `args.cluster`-member cluster), preload it and measure every point,
    appending to `points` as they complete (so a failure part-way keeps what was measured). In a cluster
    every point is measured through the leader and then through a follower, and the failover measurement
    follows the points. Returns facts about the run for the results JSON."""
    data_dir = tmp / target
    if args.cluster > 1:
        data_dir.mkdir(parents=True, exist_ok=True)
        make_cluster = corral_cluster if target == "corral" else etcd_cluster
        members = make_cluster(data_dir, args.cluster)
    else:
        members = [corral_process(data_dir) if target == "corral" else etcd_process(data_dir)]
    info: dict[str, object] = {}
    try:
        for member in members:  # cluster members wait for each other, so start them all before waiting
            member.spawn()
        for member in members:
            member.wait_healthy(STARTUP_TIMEOUT)
        server, leader = members[0], None
        drives: dict[str | None, ServerProcess] = {None: server}
        if args.cluster > 1:
            server, leader = cluster_leader(members)
            follower = pick_follower(members, server)
            drives = {"leader": server, "follower": follower}
            info["cluster"] = {
                "size": args.cluster,
                "leader": describe(server, leader),
                "follower": describe(follower),
                "members": [m.url for m in members],
            }
            print(f"{target}: {args.cluster}-member cluster, leader {server.data_dir.name} ({server.url}), "
                  f"follower {follower.data_dir.name} ({follower.url})", file=sys.stderr, flush=True)  # fmt: skip
        t0 = time.monotonic()
        method = preload(server.url, args.keys)
        info["preload"] = {"keys": args.keys, "method": method, "seconds": round(time.monotonic() - t0, 2)}
        for member in drives.values():
            check_range_key(member.url)
        for op in OPS:
            for clients in args.clients:
                for via, member in drives.items():
                    point = measure(member.url, target, op, clients, args, leader, via)
                    points.append(point)
                    print(_progress(point), file=sys.stderr, flush=True)
        if args.cluster > 1:
            info["replicated"] = check_replicated(server, members)
        if args.profile and target == "corral":
            print(f"profiling corral put at {PROFILE_CLIENTS} clients ...", file=sys.stderr, flush=True)
            try:
                info["profile"] = profile_put(server, args, BENCH_DIR / "profiles")
            except Exception as exc:  # a failed profile must not cost the measured points
                info["profile"] = {"error": f"{type(exc).__name__}: {exc}"}
        if args.cluster > 1 and args.failover_repeats > 0:
            print(f"{target}: failover, {args.failover_repeats} kills of the leader ...", file=sys.stderr, flush=True)
            try:
                failover = measure_failover(members, args.failover_repeats, b64(VALUE))
            except Exception as exc:  # a failed failover measurement must not cost the measured points
                failover = {"error": f"{type(exc).__name__}: {exc}", "flagged": True}
            info["failover"] = failover
            print(failover_summary(target, failover), file=sys.stderr, flush=True)
        for member in members:
            if member.proc is not None and member.proc.poll() is not None:
                raise RuntimeError(f"{target} {member.data_dir.name} exited during the run:\n{member.log_tail()}")
    except Exception:
        for member in members:
            name = f" {member.data_dir.name}" if len(members) > 1 else ""
            print(f"{target}{name} log tail:\n{member.log_tail()}", file=sys.stderr)
        raise
    finally:
        for member in members:
            member.kill()
    return info


def _progress(p: Point) -> str:
    flag = f"  FLAGGED: {'; '.join(p.problems)}" if p.flagged else ""
    latency = f"p50 {p.p50_ms:.2f} ms  p99 {p.p99_ms:.2f} ms"
    via = f" {p.via:<8}" if p.via else ""
    return f"{p.target:>6} {p.op:<5} c={p.clients:<3}{via} {p.ops_per_s:9.1f} ops/s  {latency}{flag}"


# --- machine facts and reporting --------------------------------------------------------------------------


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def machine_facts() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    status = ["git", "-C", str(REPO_ROOT), "status", "--porcelain"]
    dirty = subprocess.run(status, capture_output=True, text=True)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "etcd": _first_line(["etcd", "--version"]).removeprefix("etcd Version: "),
        "wrk": _first_line(["wrk", "--version"]).split(" [")[0],
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": commit + ("-dirty" if dirty.stdout.strip() else ""),
    }


def _latency(p: Point | None) -> str:
    return f"{p.p50_ms:.2f} / {p.p99_ms:.2f}" if p else "—"


def _ops(p: Point | None) -> str:
    if p is None:
        return "—"
    return f"{p.ops_per_s:,.0f}" + (" ⚠" if p.flagged else "")


def _servers_line(args: argparse.Namespace, targets: dict[str, dict[str, object]]) -> str:
    if args.cluster == 1:
        return "Servers: one single-node server per target."
    roles: dict[str, list[str]] = {"leader": [], "follower": []}
    for target in args.targets:
        cluster = targets.get(target, {}).get("cluster")
        if isinstance(cluster, dict):
            for role, names in roles.items():
                if isinstance(cluster.get(role), dict):
                    names.append(f"{target} {cluster[role]['name']}")
    notes = [f"{role}s: {', '.join(names)}" for role, names in roles.items() if names]
    note = f" ({'; '.join(notes)})" if notes else ""
    return (
        f"Servers: a {args.cluster}-member cluster per target, all members on this machine over loopback; "
        f"wrk drives the leader, then a follower, at each point{note}."
    )


def render_section(
    points: list[Point], facts: dict[str, object], args: argparse.Namespace, results_file: str,
    failures: dict[str, str], targets: dict[str, dict[str, object]] | None = None,
) -> str:  # fmt: skip
    by_key = {(p.target, p.op, p.clients, p.via): p for p in points}
    vias: tuple[str | None, ...] = VIAS if args.cluster > 1 else (None,)
    via_head, via_align = ("| via ", "---|") if args.cluster > 1 else ("", "")
    rows = [
        f"| op | clients {via_head}| corral ops/s | corral p50/p99 ms | etcd ops/s | etcd p50/p99 ms "
        "| ratio (corral/etcd) |",
        f"|---|---:|{via_align}---:|---:|---:|---:|---:|",
    ]
    for op in OPS:
        for clients in args.clients:
            for via in vias:
                c, e = by_key.get(("corral", op, clients, via)), by_key.get(("etcd", op, clients, via))
                ratio = f"{c.ops_per_s / e.ops_per_s:.2f}" if c and e and e.ops_per_s else "—"
                cells = [op, str(clients), *([via] if via else []), _ops(c), _latency(c), _ops(e), _latency(e), ratio]
                rows.append("| " + " | ".join(cells) + " |")
    lines = [
        f"Run {facts['date']} (`{results_file}`), commit `{facts['commit']}`: {args.duration} s per point "
        f"after a {args.warmup} s warm-up, {args.keys} keys, {len(VALUE)}-byte values.",
        "",
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), Linux {facts['kernel']}, "
        f"Python {facts['python']}, etcd {facts['etcd']}, {facts['wrk']}; "
        f"load average at start {facts['loadavg_at_start']}.",
        "",
        _servers_line(args, targets or {}),
        "",
        *rows,
        *render_failover(targets or {}, args.targets),
    ]
    flagged = [p for p in points if p.flagged]
    if flagged:
        lines += ["", "⚠ flagged points (numbers not trustworthy):"]
        lines += [
            f"- {p.target} {p.op} {p.clients} clients{f' via {p.via}' if p.via else ''}: {'; '.join(p.problems)}"
            for p in flagged
        ]
    for target, message in failures.items():
        lines += ["", f"⚠ {target} did not complete: {message.splitlines()[0]}"]
    return "\n".join(lines) + "\n"


def _profile_note(profile: dict[str, str]) -> str:
    if "error" in profile:
        return f"\nProfile: {profile['error'].splitlines()[0]}\n"
    files = f"`{profile['txt']}`, `{profile['svg']}`"
    return f"\nProfile of Corral under put at {PROFILE_CLIENTS} clients: {files}.\n"


def update_readme(
    section: str, path: Path = README, start_marker: str = START_MARKER, end_marker: str = END_MARKER
) -> None:
    text = path.read_text()
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise RuntimeError(f"{path} lacks the {start_marker} ... {end_marker} markers")
    path.write_text(text[: start + len(start_marker)] + "\n" + section + text[end:])


# --- entry point ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    def int_list(text: str) -> list[int]:
        values = [int(x) for x in text.split(",") if x.strip()]
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError("expected positive integers like 1,16,64")
        return values

    def target_list(text: str) -> list[str]:
        values = [x.strip() for x in text.split(",") if x.strip()]
        unknown = set(values) - set(TARGETS)
        if not values or unknown:
            raise argparse.ArgumentTypeError(f"targets are {','.join(TARGETS)}")
        return values

    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per measured point (whole)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of load before each point")
    p.add_argument("--clients", type=int_list, default=[1, 16, 64], help="comma-separated connection counts")
    p.add_argument("--targets", type=target_list, default=list(TARGETS), help="comma-separated: corral,etcd")
    p.add_argument("--keys", type=int, default=10_000, help="size of the key space puts are spread over")
    p.add_argument("--cluster", type=int, default=1, help="members per target (1: a single node)")
    p.add_argument("--failover-repeats", type=int, default=3, help="cluster: leader kills per target (0: none)")
    p.add_argument("--profile", action="store_true", help="py-spy Corral under put load")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    p.add_argument("--no-readme", action="store_true", help="leave benchmarks/README.md alone")
    args = p.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.keys < 1 or args.cluster < 1 or args.failover_repeats < 0:
        p.error("--duration must be >= 1, --warmup >= 0, --keys >= 1, --cluster >= 1, --failover-repeats >= 0")
    return args


def _point_json(p: Point) -> dict[str, object]:
    d = {**asdict(p), "flagged": p.flagged}
    if p.via is None:  # single node: the JSON stays as it was
        del d["via"]
    return d


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk", *(["etcd"] if "etcd" in args.targets else [])):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed; run `make deps`", file=sys.stderr)
            return 2
    facts = machine_facts()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    results_file = args.results_dir / f"{stamp}.json"
    points: list[Point] = []
    targets: dict[str, dict[str, object]] = {}
    failures: dict[str, str] = {}
    # Both targets' data directories live under one temporary directory, so they share a disk.
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        for target in args.targets:
            try:
                targets[target] = bench_target(target, args, Path(tmp), points)
            except Exception as exc:  # report the other target rather than losing the whole run
                failures[target] = f"{type(exc).__name__}: {exc}"
                print(f"{target} failed: {failures[target]}", file=sys.stderr)
    try:
        shown_file = str(results_file.relative_to(REPO_ROOT))
    except ValueError:
        shown_file = str(results_file)
    run = {
        "duration": args.duration,
        "warmup": args.warmup,
        "clients": args.clients,
        "targets": args.targets,
        "keys": args.keys,
        "cluster_size": args.cluster,
        **({"failover_repeats": args.failover_repeats} if args.cluster > 1 else {}),
        "value_bytes": len(VALUE),
        "results_file": shown_file,
        "target_failures": failures,
    }
    document = {
        "machine": facts,
        "run": run,
        "targets": targets,
        "points": [_point_json(p) for p in points],
    }
    tmp_file = results_file.with_suffix(".json.tmp")
    tmp_file.write_text(json.dumps(document, indent=2) + "\n")
    tmp_file.replace(results_file)
    section = render_section(points, facts, args, shown_file, failures, targets)
    if "corral" in targets and "profile" in targets["corral"]:
        section += _profile_note(targets["corral"]["profile"])  # type: ignore[arg-type]
    print(section)
    if not args.no_readme:
        if args.cluster > 1:
            update_readme(section, start_marker=CLUSTER_START_MARKER, end_marker=CLUSTER_END_MARKER)
        else:
            update_readme(section)
    flagged = any(p.flagged for p in points) or any(failover_flagged(info) for info in targets.values())
    return 1 if failures or flagged else 0


if __name__ == "__main__":
    sys.exit(main())
