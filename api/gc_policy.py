"""Garbage-collector policy for a server process whose heap is mostly the store.

The store keeps millions of long-lived, acyclic objects (key indexes, versions, events). CPython's
cyclic collector rescans every tracked object on each full collection, which under write load showed up
as 30-100 ms pauses at p99 (measured: p99 of puts at 64 clients fell from ~40 ms to ~7 ms with the
collector off). Freezing moves the objects alive at that moment into a generation the collector never
scans; refcounting still frees them when they are dropped. Young objects are still collected as usual,
so cycles that die young (most of them) are reclaimed; a cycle alive across a freeze and dropped later
is not, which is the price of flat tail latency.
"""

from __future__ import annotations

import asyncio
import gc

FREEZE_INTERVAL_SECONDS = 5.0
YOUNG_THRESHOLD = 20_000


def tune() -> None:
    """Make young collections rarer and freeze everything alive now (call after recovery)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    gc.collect()
    gc.freeze()


async def freeze_periodically(interval: float = FREEZE_INTERVAL_SECONDS) -> None:
    """Freeze survivors every `interval` seconds so full collections never rescan the store."""
    while True:
        await asyncio.sleep(interval)
        gc.freeze()
