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

import httpx

from tests.support.servers import corral_process, running


def b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


async def grant_and_attach(client: httpx.AsyncClient, leases: int, keys_on_one: int, ttl: int) -> None:
    semaphore = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with semaphore:
            lease = (await client.post("/v3/lease/grant", json={"TTL": ttl})).json()["ID"]
            await client.post("/v3/kv/put", json={"key": b64(f"eph/{i}"), "value": b64("v"), "lease": lease})

    await asyncio.gather(*(one(i) for i in range(leases)))
    big = (await client.post("/v3/lease/grant", json={"TTL": ttl})).json()["ID"]
    await asyncio.gather(*(_put(client, semaphore, f"big/{i}", big) for i in range(keys_on_one)))


async def _put(client: httpx.AsyncClient, semaphore: asyncio.Semaphore, key: str, lease: str) -> None:
    async with semaphore:
        await client.post("/v3/kv/put", json={"key": b64(key), "value": b64("v"), "lease": lease})


async def leased_keys(client: httpx.AsyncClient) -> int:
    counts = []
    for prefix, end in (("eph/", "eph0"), ("big/", "big0")):
        body = {"key": b64(prefix), "range_end": b64(end), "count_only": True}
        counts.append(int((await client.post("/v3/kv/range", json=body)).json().get("count", 0)))
    return sum(counts)


async def measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=httpx.Limits(max_connections=80)) as client:
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
                await client.post("/v3/kv/put", json={"key": b64(f"w/{i % 100}"), "value": b64("x")})
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
