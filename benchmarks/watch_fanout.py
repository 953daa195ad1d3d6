"""Watch fan-out: N watchers on one prefix, one writer at a fixed rate; delivery latency and events/s, Corral
against etcd.

`python -m benchmarks.watch_fanout [--watchers 1000,10000] [--connections 10,100] [--rate 50,5] [--duration 20]
[--procs 2] [--targets corral,etcd] [--no-readme]`

For each target and each scenario (watchers, connections, rate; the lists are paired, a single value applies to
every scenario) a fresh single-node server is started. The receiving side runs in `--procs` worker processes,
each an asyncio event loop with hand-written HTTP/1.1 connections: every connection is one `POST /v3/watch`
whose body holds that connection's share of the create requests (all on the same prefix), and its chunked
response is parsed with byte searches only (watch_id, mod_revision), never a full JSON decode. Once every
watcher's `created` reply has arrived, the parent process puts keys under the prefix at the fixed rate (open
loop: each put is sent on schedule, whether or not earlier ones were answered) for `--duration` seconds and
records each put's send time and revision. Delivery latency = the time a worker read the event off its socket
minus the time the writer started sending that put (CLOCK_MONOTONIC, shared by all processes). Every watcher
must get every written revision exactly once: missing, duplicate and unexpected events are counted, and any of
them (or an error) flags the run (exit status 1). Results go to benchmarks/results/watch-<UTC timestamp>.json,
and a markdown table to stdout and into benchmarks/README.md between the results-watch markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from benchmarks.run import b64, machine_facts, prefix_end, update_readme
from tests.support.servers import REPO_ROOT, ServerProcess, corral_process, etcd_process

BENCH_DIR = Path(__file__).resolve().parent
START_MARKER = "<!-- results-watch:start -->"
END_MARKER = "<!-- results-watch:end -->"
TARGETS = ("corral", "etcd")
PREFIX = b"fanout/"
VALUE = b"v" * 32  # the content is irrelevant; every event carries it to every watcher
STARTUP_TIMEOUT = 30.0
SETTLE_S = 1.0  # between the last `created` reply and the first put
PUT_TIMEOUT = 10.0
SETUP_STALL_S = 3.0  # a connection with no new `created` reply for this long is opened again
SETUP_ATTEMPTS = 5
TICKS = os.sysconf("SC_CLK_TCK")
TARGET_WATCHERS, TARGET_P99_MS = 1000, 100  # the goal: p99 delivery under 100 ms at 1k watchers

# What the receiving side searches for in each response line.
_MOD_REVISION = b'"mod_revision":"'
_WATCH_ID = b'"watch_id":"'
_REVISION = b'"revision":"'
_CREATED = b'"created":true'
_CANCELED = b'"canceled":true'


@dataclass(frozen=True, slots=True)
class Scenario:
    watchers: int
    connections: int
    rate: float  # puts per second

    @property
    def label(self) -> str:
        return f"{self.watchers} watchers / {self.connections} conns / {self.rate:g} puts/s"


# --- the receiving side (worker processes) ---------------------------------------------------------------


class WatchConnection(asyncio.Protocol):
    """One `POST /v3/watch` carrying `count` create requests on the prefix; counts what its watchers get.

    `seen[watch_id]` is a bytearray indexed by revision - base - 1 (base: the revision in the `created`
    replies; nothing is written while watchers are created), so a duplicate is a byte already set and a
    missing event a byte still 0 at a written revision. `recv` maps each revision to the receive times of its
    first deliveries, shared by every connection in the worker."""

    def __init__(self, worker: Worker, count: int) -> None:
        self.worker = worker
        self.count = count
        self.created = 0
        self.base = 0
        self.seen: dict[int, bytearray] = {}
        self.duplicates = 0
        self.errors: list[str] = []
        self.transport: asyncio.Transport | None = None
        self.all_created = asyncio.get_running_loop().create_future()
        self.closed = False
        self.abandoned = False  # closed by the harness during setup (see Worker.open)
        self._raw = bytearray()  # bytes off the socket, still chunk-framed
        self._body = bytearray()  # de-chunked response body not yet split into lines
        self._headers_done = False
        self._chunk_left = 0  # bytes of the current chunk still to come
        self._crlf_left = 0  # the CRLF that ends a chunk's data

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.worker.stopping and not self.abandoned:
            self._error(f"connection closed by the server ({exc})")

    def _error(self, message: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(message)
        self.worker.error_count += 1
        if not self.all_created.done():
            self.all_created.set_exception(RuntimeError(message))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        raw = self._raw
        raw += data
        pos = 0
        if not self._headers_done:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(raw[:end]).decode("latin-1")
            status = head.split("\r\n", 1)[0]
            if " 200 " not in status + " " or "chunked" not in head.lower():
                self._error(f"unexpected response: {head[:200]!r} {bytes(raw[end + 4 : end + 300])!r}")
                return
            self._headers_done = True
            pos = end + 4
        body = self._body
        n = len(raw)
        while pos < n:  # de-chunk everything that has arrived
            if self._chunk_left:
                take = min(self._chunk_left, n - pos)
                body += raw[pos : pos + take]
                pos += take
                self._chunk_left -= take
                if self._chunk_left:
                    break
                self._crlf_left = 2
            if self._crlf_left:
                take = min(self._crlf_left, n - pos)
                pos += take
                self._crlf_left -= take
                if self._crlf_left:
                    break
            line_end = raw.find(b"\r\n", pos)
            if line_end < 0:
                break
            size = int(bytes(raw[pos:line_end]).split(b";", 1)[0], 16)
            pos = line_end + 2
            if size == 0:
                self._error("the server ended the response")
                break
            self._chunk_left = size
        del raw[:pos]
        last = body.rfind(b"\n")
        if last < 0:
            return
        lines = bytes(body[:last]).split(b"\n")
        del body[: last + 1]
        for line in lines:
            if line:
                self._line(line, now)

    def _line(self, line: bytes, now: int) -> None:
        i = line.find(_MOD_REVISION)
        if i < 0:
            self._control(line)
            return
        j = line.find(_WATCH_ID)
        watch_id = int(line[j + 12 : line.index(b'"', j + 12)]) if 0 <= j < i else 0
        seen = self.seen.get(watch_id)
        if seen is None:
            self._error(f"events for unknown watch id {watch_id}")
            return
        worker = self.worker
        base = self.base
        while i >= 0:
            start = i + 16
            rev = int(line[start : line.index(b'"', start)])
            index = rev - base - 1
            if index < 0:
                worker.unexpected += 1
            else:
                if index >= len(seen):
                    seen.extend(bytes(max(index + 1 - len(seen), len(seen))))
                if seen[index]:
                    self.duplicates += 1
                else:
                    seen[index] = 1
                    worker.unique += 1
                    times = worker.recv.get(rev)
                    if times is None:
                        times = worker.recv[rev] = array("q")
                    times.append(now)
            i = line.find(_MOD_REVISION, start)

    def _control(self, line: bytes) -> None:
        """A reply without events: `created`, or something that should not happen here."""
        if _CREATED in line and _CANCELED not in line:
            j = line.find(_WATCH_ID)
            watch_id = int(line[j + 12 : line.index(b'"', j + 12)]) if j >= 0 else 0
            k = line.find(_REVISION)
            base = int(line[k + 12 : line.index(b'"', k + 12)]) if k >= 0 else 0
            if watch_id in self.seen:
                self._error(f"watch id {watch_id} created twice")
                return
            if self.created and base != self.base:
                self._error(f"created replies at revisions {self.base} and {base}: a write during creation?")
            self.base = base
            self.seen[watch_id] = bytearray(256)
            self.created += 1
            if self.created == self.count and not self.all_created.done():
                self.all_created.set_result(None)
            return
        self._error(f"unexpected message: {line[:300]!r}")


class Worker:
    """One receiving process: its share of the connections, and what they received."""

    def __init__(self, host: str, port: int, counts: list[int]) -> None:
        self.host, self.port, self.counts = host, port, counts
        self.connections: list[WatchConnection] = []
        self.recv: dict[int, array[int]] = {}
        self.unique = 0
        self.unexpected = 0
        self.error_count = 0
        self.stopping = False
        self.setup_retries: list[str] = []  # created/requested of each connection abandoned during setup

    async def open(self, count: int) -> WatchConnection:
        """A connection with `count` watchers, all created. A connection whose `created` replies stop coming
        short of `count` (etcd's gateway can stop reading the request body once it has flushed its first
        reply, so the rest of the create requests are never seen) is closed and opened afresh."""
        for _ in range(SETUP_ATTEMPTS):
            conn = await self._connect(count)
            if await self._all_created(conn):
                return conn
            self.setup_retries.append(f"{conn.created}/{count}")
            conn.abandoned = True
            self.connections.remove(conn)
            if conn.transport is not None:
                conn.transport.close()
        raise RuntimeError(f"{SETUP_ATTEMPTS} connections in a row stalled short of {count} watchers")

    async def _connect(self, count: int) -> WatchConnection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: WatchConnection(self, count), self.host, self.port)
        self.connections.append(conn)
        create = {"create_request": {"key": b64(PREFIX), "range_end": b64(prefix_end(PREFIX))}}
        body = json.dumps(create, separators=(",", ":")).encode() * count
        head = (
            f"POST /v3/watch HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        assert conn.transport is not None
        conn.transport.write(head + body)
        return conn

    @staticmethod
    async def _all_created(conn: WatchConnection) -> bool:
        """Wait for every `created` reply; False once none has come for SETUP_STALL_S."""
        while True:
            before = conn.created
            try:
                await asyncio.wait_for(asyncio.shield(conn.all_created), SETUP_STALL_S)
                return True
            except TimeoutError:
                if conn.created == before:
                    return False

    async def run(self, pipe: Connection, setup_timeout: float) -> None:
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(*(self.open(c) for c in self.counts)), setup_timeout)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the scenario
            created = sum(c.created for c in self.connections)
            short = [f"{c.created}/{c.count}" for c in self.connections if c.created < c.count]
            errors = [e for c in self.connections for e in c.errors][:3]
            pipe.send(("error", f"{type(exc).__name__}: {exc} ({created} of {sum(self.counts)} created; "
                                f"connections short: {short}; errors: {errors})"))
            return
        pipe.send(("ready", {"setup_s": round(time.monotonic() - t0, 3), "created": sum(self.counts),
                             "setup_retries": self.setup_retries}))  # fmt: skip
        message = await loop.run_in_executor(None, pipe.recv)  # ("go",)
        cpu0 = os.times()
        message = await loop.run_in_executor(None, pipe.recv)  # ("stop", written revisions, deadline)
        _, written, deadline_ns = message
        expected = len(written) * sum(self.counts)
        while self.unique < expected and time.monotonic_ns() < deadline_ns and self.error_count == 0:
            await asyncio.sleep(0.02)
        cpu1 = os.times()
        self.stopping = True
        for conn in self.connections:
            if conn.transport is not None:
                conn.transport.close()
        pipe.send(("done", self.result(written, cpu1.user + cpu1.system - cpu0.user - cpu0.system)))

    def result(self, written: list[int], cpu_s: float) -> dict[str, Any]:
        missing, duplicates, unexpected = 0, 0, self.unexpected
        written_set = set(written)
        for conn in self.connections:
            duplicates += conn.duplicates
            indexes = [rev - conn.base - 1 for rev in written]
            for seen in conn.seen.values():
                got = sum(seen)
                hit = sum(1 for i in indexes if 0 <= i < len(seen) and seen[i])
                missing += len(written) - hit
                unexpected += got - hit
        return {
            "watchers": sum(self.counts),
            "connections": len(self.connections),
            "events": self.unique,
            "missing": missing,
            "duplicates": duplicates,
            "unexpected": unexpected,
            "errors": [e for conn in self.connections for e in conn.errors][:10],
            "error_count": self.error_count,
            "cpu_s": round(cpu_s, 3),
            "recv": {rev: times.tobytes() for rev, times in self.recv.items() if rev in written_set},
        }


def worker_main(pipe: Connection, url: str, counts: list[int], setup_timeout: float) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(Worker(host, int(port), counts).run(pipe, setup_timeout))
    except Exception as exc:  # noqa: BLE001
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))


# --- the writer (parent process) ----------------------------------------------------------------------------


@dataclass(slots=True)
class Put:
    scheduled_ns: int
    send_ns: int = 0
    ack_ns: int = 0
    revision: int = 0
    error: str = ""


async def write(url: str, rate: float, duration: float) -> list[Put]:
    """Open loop: put i is sent at start + i / rate, on its own task, whatever happened to earlier puts."""
    count = max(1, round(rate * duration))
    interval_ns = 1e9 / rate
    puts: list[Put] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=PUT_TIMEOUT, limits=limits) as client:
        await client.post("/v3/kv/range", json={"key": b64(PREFIX), "count_only": True})  # open a connection

        async def put(p: Put, i: int) -> None:
            body = json.dumps({"key": b64(PREFIX + b"%08d" % i), "value": b64(VALUE)}).encode()
            p.send_ns = time.monotonic_ns()
            try:
                r = await client.post("/v3/kv/put", content=body, headers={"content-type": "application/json"})
                p.ack_ns = time.monotonic_ns()
                r.raise_for_status()
                p.revision = int(r.json()["header"]["revision"])
            except Exception as exc:  # noqa: BLE001 - counted as a failed put
                p.error = f"{type(exc).__name__}: {exc}"[:200]

        start = time.monotonic_ns() + 50_000_000
        tasks = []
        for i in range(count):
            p = Put(scheduled_ns=start + round(i * interval_ns))
            puts.append(p)
            delay = (p.scheduled_ns - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(put(p, i)))
        await asyncio.gather(*tasks)
    return puts


# --- one scenario against one server -----------------------------------------------------------------------


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (every core), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / TICKS


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def latency_stats(values: list[float]) -> dict[str, float]:
    values.sort()
    if not values:
        return {}
    return {
        "p50_ms": round(percentile(values, 0.50), 2),
        "p90_ms": round(percentile(values, 0.90), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "p999_ms": round(percentile(values, 0.999), 2),
        "max_ms": round(values[-1], 2),
        "mean_ms": round(sum(values) / len(values), 2),
    }


def run_scenario(server: ServerProcess, scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    procs = max(1, min(args.procs, scenario.connections))
    per_conn = split(scenario.watchers, scenario.connections)
    shares = [per_conn[i::procs] for i in range(procs)]
    ctx = mp.get_context("spawn")
    pipes: list[Connection] = []
    workers = []
    result: dict[str, Any] = {
        "watchers": scenario.watchers,
        "connections": scenario.connections,
        "rate": scenario.rate,
        "duration_s": args.duration,
        "procs": procs,
        "problems": [],
    }
    problems: list[str] = result["problems"]
    try:
        for share in shares:
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child_end, server.url, share, args.setup_timeout))
            proc.start()
            child_end.close()
            pipes.append(parent_end)
            workers.append(proc)
        t0 = time.monotonic()
        result["setup_retries"] = []
        for pipe in pipes:
            if not pipe.poll(args.setup_timeout + 30):
                raise RuntimeError("a worker did not report within the setup timeout")
            kind, info = pipe.recv()
            if kind != "ready":
                raise RuntimeError(f"watch setup failed: {info}")
            result["setup_retries"] += info["setup_retries"]
        result["setup_s"] = round(time.monotonic() - t0, 2)
        if result["setup_retries"]:
            print(f"  {server.kind}: reopened {len(result['setup_retries'])} connections whose creates stalled "
                  f"(created/requested: {result['setup_retries'][:5]})", file=sys.stderr)  # fmt: skip
        print(f"  {server.kind}: {scenario.watchers} watchers created in {result['setup_s']} s", file=sys.stderr)
        time.sleep(SETTLE_S)
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            r = client.post("/v3/kv/range", json={"key": b64(PREFIX), "count_only": True})
            r.raise_for_status()
            revision_before = int(r.json()["header"]["revision"])
        for pipe in pipes:
            pipe.send(("go",))
        busy0, server_cpu0 = machine_busy_seconds(), cpu_seconds(server.proc.pid)  # type: ignore[union-attr]
        own_cpu0, wall0 = os.times(), time.monotonic()
        puts = asyncio.run(write(server.url, scenario.rate, args.duration))
        written = [p.revision for p in puts if not p.error]
        failed = [p for p in puts if p.error]
        last_send = max(p.send_ns for p in puts)
        deadline = time.monotonic_ns() + int(args.drain_timeout * 1e9)
        for pipe in pipes:
            pipe.send(("stop", written, deadline))
        reports = []
        for pipe in pipes:
            if not pipe.poll(args.drain_timeout + 60):
                raise RuntimeError("a worker did not report after the drain timeout")
            kind, info = pipe.recv()
            if kind != "done":
                raise RuntimeError(f"worker failed: {info}")
            reports.append(info)
        wall = time.monotonic() - wall0
        own_cpu1 = os.times()
        server_cpu = cpu_seconds(server.proc.pid) - server_cpu0  # type: ignore[union-attr]
        busy = machine_busy_seconds() - busy0
    finally:
        for proc in workers:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()

    send_by_rev = {p.revision: p.send_ns for p in puts if not p.error}
    ack_by_rev = {p.revision: p.ack_ns for p in puts if not p.error}
    from_send: list[float] = []
    from_ack: list[float] = []
    last_recv = 0
    by_rev: dict[int, array[int]] = {}
    for report in reports:
        for rev, blob in report.pop("recv").items():
            times = by_rev.setdefault(rev, array("q"))
            times.frombytes(blob)
    for rev, times in by_rev.items():
        send, ack = send_by_rev[rev], ack_by_rev[rev]
        from_send.extend((t - send) / 1e6 for t in times)
        from_ack.extend((t - ack) / 1e6 for t in times)
        last_recv = max(last_recv, max(times))
    first_send = min(p.send_ns for p in puts)
    # Per put, in send order: [seconds since the first put, put latency ms, first and last delivery ms].
    timeline = [
        [round((p.send_ns - first_send) / 1e9, 3), round((p.ack_ns - p.send_ns) / 1e6, 1),
         round((min(by_rev[p.revision]) - p.send_ns) / 1e6, 1), round((max(by_rev[p.revision]) - p.send_ns) / 1e6, 1)]
        for p in puts if not p.error and p.revision in by_rev
    ]  # fmt: skip
    events = sum(r["events"] for r in reports)
    # The delivery window: from the first put to the last event, and at least the writer's own period (count
    # puts at `rate` span count / rate), so a server that keeps up delivers exactly watchers x rate events/s.
    span_s = max(len(puts) / scenario.rate, (last_recv - first_send) / 1e9) if last_recv else 0.0
    put_latency = sorted((p.ack_ns - p.send_ns) / 1e6 for p in puts if not p.error)
    lags = [(p.send_ns - p.scheduled_ns) / 1e6 for p in puts]
    expected = len(written) * scenario.watchers
    result.update(
        {
            "puts": len(puts),
            "puts_failed": len(failed),
            "put_errors": sorted({p.error for p in failed})[:5],
            "revisions": [min(written), max(written)] if written else [],
            "revision_before": revision_before,
            "put_p50_ms": round(percentile(put_latency, 0.5), 2) if put_latency else None,
            "put_p99_ms": round(percentile(put_latency, 0.99), 2) if put_latency else None,
            "writer_max_lag_ms": round(max(lags), 2),
            "expected_events": expected,
            "events": events,
            "offered_events_per_s": round(scenario.watchers * scenario.rate, 1),
            "events_per_s": round(events / span_s, 1) if span_s > 0 else 0.0,
            "delivery_span_s": round(span_s, 3),
            "drain_after_last_put_s": round((last_recv - last_send) / 1e9, 3) if last_recv else None,
            "latency_from_send": latency_stats(from_send),
            "latency_from_ack": latency_stats(from_ack),
            "missing": sum(r["missing"] for r in reports),
            "duplicates": sum(r["duplicates"] for r in reports),
            "unexpected": sum(r["unexpected"] for r in reports),
            "client_errors": [e for r in reports for e in r["errors"]][:10],
            "timeline": timeline,
            "wall_s": round(wall, 2),
            "server_cpu_s": round(server_cpu, 2),
            "server_cores": round(server_cpu / wall, 2) if wall else None,
            "client_cpu_s": [r["cpu_s"] for r in reports],
            "client_cores": round(sum(r["cpu_s"] for r in reports) / wall, 2) if wall else None,
            "writer_cpu_s": round(own_cpu1.user + own_cpu1.system - own_cpu0.user - own_cpu0.system, 2),
        }
    )
    # Everything else the machine ran meanwhile (other processes, the kernel's own work): noise if large.
    ours = server_cpu + sum(r["cpu_s"] for r in reports) + result["writer_cpu_s"]
    result["other_cores"] = round(max(0.0, busy - ours) / wall, 2) if wall else None
    if revision_before + 1 != (min(written) if written else revision_before + 1):
        problems.append(f"first put at revision {min(written)}, expected {revision_before + 1}")
    if failed:
        problems.append(f"{len(failed)} puts failed: {result['put_errors'][0]}")
    if result["missing"] or result["duplicates"] or result["unexpected"]:
        problems.append(
            f"missing {result['missing']}, duplicate {result['duplicates']}, unexpected {result['unexpected']} "
            f"events of {expected}"
        )
    if any(r["error_count"] for r in reports):
        problems.append(f"client errors: {result['client_errors'][:3]}")
    result["flagged"] = bool(problems)
    return result


def bench_target(target: str, scenarios: list[Scenario], args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    out = []
    for n, scenario in enumerate(scenarios):
        data_dir = tmp / f"{target}-{n}"
        server = corral_process(data_dir) if target == "corral" else etcd_process(data_dir)
        print(f"{target}: {scenario.label} ...", file=sys.stderr, flush=True)
        try:
            server.start(STARTUP_TIMEOUT)
            point = {"target": target, **run_scenario(server, scenario, args)}
            if server.proc is not None and server.proc.poll() is not None:
                raise RuntimeError(f"{target} exited during the run")
        except Exception as exc:  # report the rest rather than losing the whole run
            print(f"{target} log tail:\n{server.log_tail()}", file=sys.stderr)
            point = {"target": target, "watchers": scenario.watchers, "connections": scenario.connections,
                     "rate": scenario.rate, "error": f"{type(exc).__name__}: {exc}", "flagged": True,
                     "problems": [f"{type(exc).__name__}: {exc}"]}  # fmt: skip
        finally:
            server.kill()
        out.append(point)
        print(_progress(point), file=sys.stderr, flush=True)
    return out


# --- reporting -----------------------------------------------------------------------------------------------


def _progress(p: dict[str, Any]) -> str:
    head = f"{p['target']:>6} {p['watchers']:>6} watchers {p['connections']:>4} conns {p['rate']:g}/s"
    if "error" in p:
        return f"{head}  FAILED: {p['error']}"
    lat = p["latency_from_send"]
    flag = f"  FLAGGED: {'; '.join(p['problems'])}" if p["flagged"] else ""
    return (
        f"{head}  p50 {lat.get('p50_ms')} ms  p99 {lat.get('p99_ms')} ms  max {lat.get('max_ms')} ms  "
        f"{p['events_per_s']:,.0f} events/s (offered {p['offered_events_per_s']:,.0f})  "
        f"server {p['server_cores']} cores, client {p['client_cores']} cores{flag}"
    )


def _cells(p: dict[str, Any] | None) -> list[str]:
    if p is None:
        return ["—", "—", "—"]
    if "error" in p:
        return ["⚠ failed", "—", "—"]
    lat = p["latency_from_send"]
    warn = " ⚠" if p["flagged"] else ""
    bad = f"{p['missing']} / {p['duplicates']}" + (f" (+{p['unexpected']} unexpected)" if p["unexpected"] else "")
    return [f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f}{warn}", f"{p['events_per_s']:,.0f}", bad]


def render_section(
    points: list[dict[str, Any]], scenarios: list[Scenario], facts: dict[str, object], args: argparse.Namespace,
    results_file: str,
) -> str:  # fmt: skip
    by_key = {(p["target"], p["watchers"], p["connections"], p["rate"]): p for p in points}
    rows = [
        "| watchers | connections | puts/s | offered events/s | corral p50 / p99 ms | corral events/s "
        "| corral missing / dup | etcd p50 / p99 ms | etcd events/s | etcd missing / dup |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    details = []
    for s in scenarios:
        c = by_key.get(("corral", s.watchers, s.connections, s.rate))
        e = by_key.get(("etcd", s.watchers, s.connections, s.rate))
        cells = [f"{s.watchers:,}", str(s.connections), f"{s.rate:g}", f"{s.watchers * s.rate:,.0f}",
                 *_cells(c), *_cells(e)]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
        for p in (c, e):
            if p and "error" not in p:
                lat = p["latency_from_send"]
                details.append(
                    f"- {p['target']}, {s.watchers:,} watchers: p99.9 {lat['p999_ms']:.1f} ms, max "
                    f"{lat['max_ms']:.1f} ms; last event {p['drain_after_last_put_s']} s after the last put; "
                    f"put p50 {p['put_p50_ms']} ms; server {p['server_cores']} cores, client "
                    f"{p['client_cores']} cores ({p['procs']} procs), everything else {p['other_cores']} cores, "
                    f"over {p['wall_s']} s."
                )
    target = []
    for p in points:
        if p["watchers"] == TARGET_WATCHERS and "error" not in p:
            p99 = p["latency_from_send"]["p99_ms"]
            verdict = "met" if p99 < TARGET_P99_MS and not p["flagged"] else "not met"
            target.append(f"{p['target']} {p99:.1f} ms ({verdict})")
    lines = [
        f"Run {facts['date']} (`{results_file}`), commit `{facts['commit']}`: {args.duration:g} s of puts per row "
        f"({len(VALUE)}-byte values, one key per put), {args.procs} receiving processes.",
        "",
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), Linux {facts['kernel']}, Python {facts['python']}, "
        f"etcd {facts['etcd']}; load average at start {facts['loadavg_at_start']}.",
        "",
        *rows,
        "",
        *details,
        *(["", f"Target: p99 delivery under {TARGET_P99_MS} ms at {TARGET_WATCHERS:,} watchers: {', '.join(target)}."]
          if target else []),
    ]
    flagged = [p for p in points if p.get("flagged")]
    if flagged:
        lines += ["", "⚠ flagged rows (numbers not trustworthy, or delivery incomplete):"]
        lines += [f"- {p['target']} {p['watchers']} watchers: {'; '.join(p['problems'])}" for p in flagged]
    return "\n".join(lines) + "\n"


# --- entry point ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    def int_list(text: str) -> list[int]:
        values = [int(x) for x in text.split(",") if x.strip()]
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError("expected positive integers like 1000,10000")
        return values

    def float_list(text: str) -> list[float]:
        values = [float(x) for x in text.split(",") if x.strip()]
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError("expected positive numbers like 50,5")
        return values

    def target_list(text: str) -> list[str]:
        values = [x.strip() for x in text.split(",") if x.strip()]
        if not values or set(values) - set(TARGETS):
            raise argparse.ArgumentTypeError(f"targets are {','.join(TARGETS)}")
        return values

    p = argparse.ArgumentParser(prog="python -m benchmarks.watch_fanout", description=__doc__.splitlines()[0])
    p.add_argument("--watchers", type=int_list, default=[1000, 10000], help="watchers per scenario")
    p.add_argument("--connections", type=int_list, default=[10, 100], help="connections per scenario")
    p.add_argument("--rate", type=float_list, default=[50.0, 5.0], help="puts per second per scenario")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of puts per scenario")
    p.add_argument("--procs", type=int, default=2, help="receiving processes")
    p.add_argument("--targets", type=target_list, default=list(TARGETS), help="comma-separated: corral,etcd")
    p.add_argument("--setup-timeout", type=float, default=120.0, help="seconds for every watcher to be created")
    p.add_argument("--drain-timeout", type=float, default=60.0,
                   help="seconds after the last put for every event to arrive")  # fmt: skip
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    p.add_argument("--no-readme", action="store_true", help="leave benchmarks/README.md alone")
    args = p.parse_args(argv)
    n = max(len(args.watchers), len(args.connections), len(args.rate))
    for name in ("watchers", "connections", "rate"):
        values = getattr(args, name)
        if len(values) == 1:
            setattr(args, name, values * n)
        elif len(values) != n:
            p.error("--watchers, --connections and --rate take one value each, or as many as the longest")
    if args.duration <= 0 or args.procs < 1 or any(c > w for c, w in zip(args.connections, args.watchers, strict=True)):
        p.error("--duration must be > 0, --procs >= 1, and no scenario may have more connections than watchers")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if "etcd" in args.targets and shutil.which("etcd") is None:
        print("etcd is not installed; run `make deps`", file=sys.stderr)
        return 2
    scenarios = [Scenario(w, c, r) for w, c, r in zip(args.watchers, args.connections, args.rate, strict=True)]
    facts = machine_facts()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    results_file = args.results_dir / f"watch-{stamp}.json"
    points: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="corral-watch-bench-") as tmp:
        for target in args.targets:
            points += bench_target(target, scenarios, args, Path(tmp))
    try:
        shown_file = str(results_file.relative_to(REPO_ROOT))
    except ValueError:
        shown_file = str(results_file)
    document = {
        "machine": facts,
        "run": {
            "kind": "watch-fanout",
            "scenarios": [{"watchers": s.watchers, "connections": s.connections, "rate": s.rate} for s in scenarios],
            "duration_s": args.duration,
            "procs": args.procs,
            "targets": args.targets,
            "prefix": PREFIX.decode(),
            "value_bytes": len(VALUE),
            "latency": "worker receive time minus the writer's send time of the put (latency_from_ack: minus its "
            "ack time)",
            "results_file": shown_file,
        },
        "points": points,
    }
    tmp_file = results_file.with_suffix(".json.tmp")
    tmp_file.write_text(json.dumps(document, indent=2) + "\n")
    tmp_file.replace(results_file)
    section = render_section(points, scenarios, facts, args, shown_file)
    print(section)
    if not args.no_readme:
        update_readme(section, start_marker=START_MARKER, end_marker=END_MARKER)
    return 1 if any(p.get("flagged") for p in points) else 0


if __name__ == "__main__":
    sys.exit(main())
