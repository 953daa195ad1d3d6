"""How the store behaves at a million keys: apply rate, memory, range latency, snapshot and restore.

Run: `.venv/bin/python -m benchmarks.store_scale [--keys 1000000]`. In-process, no HTTP, no disk: this
measures the data structures alone.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

from corral.store import kv
from corral.store.state_machine import KVStateMachine
from corral.store.types import PutRequest, RangeRequest


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, count: int, fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    per = f"{elapsed / count * 1e6:8.2f} us/op" if count > 1 else ""
    print(f"{label:42s} {elapsed:8.3f} s {per}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.keys
    gc.freeze()  # as the server does: keep the collector off the store's objects
    machine = KVStateMachine()
    value = b"v" * 256
    base = rss_mib()

    def load() -> None:
        for i in range(n):
            machine.apply_command(PutRequest(b"topic/%08d/partition" % i, value))

    timed(f"put {n:,} new keys", n, load)
    print(f"{'memory for the store':42s} {rss_mib() - base:8.0f} MiB")
    store = machine.store
    probes = 10_000
    keys = [b"topic/%08d/partition" % (i * 97 % n) for i in range(probes)]
    timed("get one key (latest)", probes, lambda: [kv.range_(store, RangeRequest(key)) for key in keys])
    prefixes = [i % (n // 100) for i in range(1000)]
    ranges = [RangeRequest(b"topic/%06d" % p, b"topic/%06d" % (p + 1)) for p in prefixes]
    timed("prefix range of 100 keys", 1000, lambda: [kv.range_(store, r) for r in ranges])
    timed("count_only over every key", 1, lambda: kv.range_(store, RangeRequest(b"\0", b"\0", count_only=True)))
    snapshot: list[bytes] = []
    views = []
    timed("snapshot: capture a view (on the loop)", 1, lambda: views.append(machine.snapshot()))
    timed("snapshot: serialize (off the loop)", 1, lambda: snapshot.append(views[0].serialize()))
    views[0].release()
    print(f"{'snapshot size':42s} {len(snapshot[0]) / 2**20:8.0f} MiB")
    copy = KVStateMachine()
    timed("restore", 1, lambda: copy.restore(snapshot[0]))
    timed("compact at the current revision (first step)", 1, lambda: store.compact(store.revision))
    timed("reclaim the rest (steps ride on later writes)", 1, store.reclaim_all)


if __name__ == "__main__":
    main()
