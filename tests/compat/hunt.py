"""Run many seeds against etcd and Corral and list every kind of mismatch, with the shortest example of each.

    .venv/bin/python -m tests.compat.hunt [FIRST_SEED LAST_SEED [OPS_PER_SEED]]     (default 1 20 1500)

The pytest form stops a seed at its first mismatch; this one keeps going after read mismatches (a write
mismatch ends the seed, since the stores may differ from then on) and groups them by (path, op label, etcd
status, Corral status). `CORRAL_DIFF_TARGET=etcd` compares etcd with a second etcd instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

from tests.compat.harness import Exchange, could_write, describe, normalized, remove, restart_empty, send
from tests.compat.opgen import Op, OpGen
from tests.support.servers import corral_process, etcd_process

Example = tuple[int, int, Op, Exchange, Exchange]


def hunt(seeds: range, n_ops: int) -> dict[tuple[object, ...], list[Example]]:
    base = Path(tempfile.mkdtemp(prefix="corral-hunt-"))
    etcd = etcd_process(base / "etcd")
    other = etcd_process(base / "other") if os.environ.get("CORRAL_DIFF_TARGET") == "etcd" else None
    corral = other or corral_process(base / "corral")
    groups: dict[tuple[object, ...], list[Example]] = defaultdict(list)
    try:
        etcd.start()
        corral.start()
        for seed in seeds:
            restart_empty(etcd)
            restart_empty(corral)
            gen = OpGen(seed)
            with (
                httpx.Client(base_url=etcd.url, timeout=15) as a,
                httpx.Client(base_url=corral.url, timeout=15) as b,
            ):
                for index in range(n_ops):
                    op = gen.next_op()
                    ref, got = send(a, op), send(b, op)
                    gen.observe(op, ref.status, ref.body)
                    if normalized(op, ref) != normalized(op, got):
                        groups[(op.path, op.label, ref.status, got.status)].append(
                            (seed, index, op, ref, got)
                        )
                        if could_write(op):
                            break
    finally:
        remove(etcd)
        remove(corral)
        shutil.rmtree(base, ignore_errors=True)
    return groups


def main() -> None:
    args = [int(arg) for arg in sys.argv[1:]] + [1, 20, 1500][len(sys.argv) - 1 :]
    first, last, n_ops = args[:3]
    started = time.monotonic()
    groups = hunt(range(first, last + 1), n_ops)
    took = time.monotonic() - started
    print(f"seeds {first}..{last} x {n_ops} ops: {len(groups)} kind(s) of mismatch in {took:.0f}s")
    for key, examples in sorted(groups.items(), key=lambda item: -len(item[1])):
        seed, index, op, ref, got = min(examples, key=lambda example: len(example[2].content()))
        print(f"\n=== {key}: {len(examples)} time(s), seeds {sorted({e[0] for e in examples})[:12]}")
        print(f"seed={seed} op #{index}\n{describe(op)}\netcd   {ref.summary}\ncorral {got.summary}")


if __name__ == "__main__":
    main()
