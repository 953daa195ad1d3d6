"""Mass lease expiry on one Corral member: 10k leases (one key each) plus one lease holding 1000 keys,
all expiring together, while a client keeps writing. Reports how long until every leased key is gone and
the writer's put latency before and during the expiry.

`python -m benchmarks.lease_expiry [--leases 10000] [--keys-on-one 1000] [--ttl 3]`
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from corral.client import AsyncClient

from tests.support.servers import corral_process, running


async def grant_and_attach(client: AsyncClient, leases: int, keys_on_one: int, ttl: int) -> None:
    semaphore = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with semaphore:
            lease = (await client.lease_grant(ttl)).id
            await client.put(f"eph/{i}", "v", lease=lease)

    await asyncio.gather(*(one(i) for i in range(leases)))
    big = (await client.lease_grant(ttl)).id
    await asyncio.gather(*(_put(client, semaphore, f"big/{i}", big) for i in range(keys_on_one)))


async def _put(client: AsyncClient, semaphore: asyncio.Semaphore, key: str, lease: int) -> None:
    async with semaphore:
        await client.put(key, "v", lease=lease)


async def leased_keys(client: AsyncClient) -> int:
    counts = [(await client.get(prefix, prefix=True, count_only=True)).count for prefix in ("eph/", "big/")]
    return sum(counts)


async def measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    async with AsyncClient(url, timeout=30.0) as client:
        start = time.monotonic()
        await grant_and_attach(client, args.leases, args.keys_on_one, args.ttl)
        granted = time.monotonic()
        latencies: dict[str, list[float]] = {"before": [], "during": []}
        phase = "before"
        stop = asyncio.Event()

        async def writer() -> None:
            i = 0
            while not stop.is_set():
                sent = time.monotonic()
                await client.put(f"w/{i % 100}", "x")
                latencies[phase].append(time.monotonic() - sent)
                i += 1

        task = asyncio.create_task(writer())
        while await leased_keys(client) == args.leases + args.keys_on_one:
            await asyncio.sleep(0.05)
        phase = "during"
        first_gone = time.monotonic()
        while await leased_keys(client) > 0:
            await asyncio.sleep(0.05)
        all_gone = time.monotonic()
        stop.set()
        await task

    def p(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else float("nan")

    return {
        "grant_and_attach_s": granted - start,
        "expiry_spread_s": all_gone - first_gone,
        "first_expiry_after_grant_s": first_gone - granted,
        "put_p50_before_ms": p(latencies["before"], 50),
        "put_p99_before_ms": p(latencies["before"], 99),
        "put_p50_during_ms": p(latencies["during"], 50),
        "put_p99_during_ms": p(latencies["during"], 99),
        "put_max_during_ms": max(latencies["during"], default=0.0) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=10_000)
    parser.add_argument("--keys-on-one", type=int, default=1000)
    parser.add_argument("--ttl", type=int, default=30)  # longer than granting takes, so "before" is measured
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running(corral_process(Path(tmp) / "data")) as server:
        result = asyncio.run(measure(server.url, args))
    for name, value in result.items():
        print(f"{name:28} {value:10.2f}")


if __name__ == "__main__":
    main()
