"""Put throughput through Corral's Python client, against Corral and against etcd's gateway, same run.

`python -m benchmarks.client_put [--procs 2] [--concurrency 32] [--duration 10] [--mode async|sync]`

Each target gets a fresh single-node server. `--procs` worker processes each keep `--concurrency` puts of
256-byte values outstanding (asyncio tasks over one `AsyncClient`, or threads over one `Client` with
`--mode sync`) for `--duration` seconds after a one-second warm-up. Reported: acknowledged puts per second
(all processes together) and the per-put latency median and p99. Results go to
benchmarks/results/client-<UTC timestamp>.json and a table into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.run import BENCH_DIR, VALUE, machine_facts, update_readme
from tests.support.servers import ServerProcess, corral_process, etcd_process

START_MARKER = "<!-- results-client:start -->"
END_MARKER = "<!-- results-client:end -->"
WARMUP = 1.0


async def _async_worker(url: str, concurrency: int, duration: float, worker: int) -> tuple[int, list[float]]:
    from corral.client import AsyncClient

    latencies: list[float] = []
    async with AsyncClient(url) as client:
        start = time.monotonic()
        measure_from, stop_at = start + WARMUP, start + WARMUP + duration

        async def writer(n: int) -> None:
            i = 0
            while (now := time.monotonic()) < stop_at:
                await client.put(f"bench/{worker}/{n}/{i % 1000}", VALUE)
                if now >= measure_from:
                    latencies.append(time.monotonic() - now)
                i += 1

        await asyncio.gather(*(writer(n) for n in range(concurrency)))
    return len(latencies), latencies


def _sync_worker(url: str, concurrency: int, duration: float, worker: int) -> tuple[int, list[float]]:
    from corral.client import Client

    latencies: list[float] = []
    with Client(url) as client:
        start = time.monotonic()
        measure_from, stop_at = start + WARMUP, start + WARMUP + duration

        def writer(n: int) -> None:
            i = 0
            while (now := time.monotonic()) < stop_at:
                client.put(f"bench/{worker}/{n}/{i % 1000}", VALUE)
                if now >= measure_from:
                    latencies.append(time.monotonic() - now)
                i += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return len(latencies), latencies


def _worker_main(args: argparse.Namespace) -> None:
    if args.mode == "async":
        count, latencies = asyncio.run(_async_worker(args.worker, args.concurrency, args.duration, args.index))
    else:
        count, latencies = _sync_worker(args.worker, args.concurrency, args.duration, args.index)
    json.dump({"count": count, "latencies": latencies}, sys.stdout)


def measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    """Run the worker processes against `url`; puts/s and latency percentiles (ms)."""
    command = [sys.executable, "-m", "benchmarks.client_put", "--worker", url, "--mode", args.mode,
               "--concurrency", str(args.concurrency), "--duration", str(args.duration)]  # fmt: skip
    procs = [
        subprocess.Popen([*command, "--index", str(i)], stdout=subprocess.PIPE, cwd=BENCH_DIR.parent)
        for i in range(args.procs)
    ]
    outputs = [json.loads(proc.communicate(timeout=args.duration + 60)[0]) for proc in procs]
    latencies = sorted(x for out in outputs for x in out["latencies"])
    count = sum(out["count"] for out in outputs)
    return {
        "puts_per_s": round(count / args.duration),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


def _server(target: str, tmp: Path) -> ServerProcess:
    return corral_process(tmp / "corral") if target == "corral" else etcd_process(tmp / "etcd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--mode", choices=("async", "sync"), default="async")
    parser.add_argument("--targets", default="corral,etcd")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker_main(args)
        return

    facts = machine_facts()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="corral-client-bench-") as tmp:
        for target in args.targets.split(","):
            server = _server(target, Path(tmp))
            server.start()
            try:
                results[target] = measure(server.url, args)
            finally:
                server.kill()
            print(f"{target}: {results[target]}", file=sys.stderr)

    stamp = facts["date"]
    out = BENCH_DIR / "results" / f"client-{str(stamp).replace(':', '').replace('-', '')}.json"
    out.write_text(json.dumps({"machine": facts, "args": vars(args), "results": results}, indent=2) + "\n")
    lines = [
        f"Corral's client ({args.mode}), {args.procs} processes x {args.concurrency} outstanding puts of 256 bytes, "
        f"{args.duration:g} s, fresh single-node servers, {stamp} (commit {facts['commit']}, load at start "
        f"{facts['loadavg_at_start']}); `{out.relative_to(BENCH_DIR.parent)}`.",
        "",
        "| server | puts/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
        *(f"| {t} | {r['puts_per_s']:,} | {r['p50_ms']} | {r['p99_ms']} |" for t, r in results.items()),
    ]
    if "corral" in results and "etcd" in results:
        ratio = results["corral"]["puts_per_s"] / max(results["etcd"]["puts_per_s"], 1)
        lines += ["", f"Corral / etcd: {ratio:.2f}x."]
    section = "\n".join(lines)
    print(section)
    if not args.no_readme:
        update_readme(section, start_marker=START_MARKER, end_marker=END_MARKER)


if __name__ == "__main__":
    main()
