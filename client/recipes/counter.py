"""A shared integer counter, changed by compare-and-swap.

Guarantee: every `add` is applied exactly once and atomically: it writes `old + delta` only if the key
is still at the mod revision it read, and retries otherwise (the failed txn returns the current value, so
a retry costs one round trip). The value is stored as decimal text, readable by any etcd tool.

Limit: under heavy contention on one key each `add` may retry several times (the counter makes progress,
but one caller can be unlucky: `max_tries` bounds it). An `add` whose answer is lost in a connection
failure raises `TransportError`: it may or may not have been applied.
"""

from __future__ import annotations

import asyncio
import random

from corral.client._async import AsyncClient
from corral.client._errors import CorralError
from corral.client._models import KeyValue, RangeResult
from corral.client._sync import Client
from corral.client.recipes._common import key_of, on_portal
from corral.client.txn import KeyLike
from corral.client.txn import get as get_op
from corral.client.txn import mod as mod_of
from corral.client.txn import put as put_op

__all__ = ["AsyncCounter", "Counter", "CounterContended"]


class CounterContended(CorralError):
    """`add` lost the compare-and-swap race `max_tries` times in a row."""


class AsyncCounter:
    """The counter at key `name`, `default` until first written (kazoo's `Counter`)."""

    def __init__(self, client: AsyncClient, name: KeyLike, default: int = 0, *, max_tries: int | None = None) -> None:
        self.client = client
        self.key = key_of(name)
        self.default = default
        self.max_tries = max_tries

    async def get(self) -> int:
        """The value now."""
        return self._value((await self.client.get(self.key)).first)

    async def add(self, delta: int) -> int:
        """Add `delta` atomically and return the new value."""
        found = (await self.client.get(self.key)).first
        tries = 0
        while True:
            new = self._value(found) + delta
            seen = found.mod_revision if found is not None else 0
            result = await self.client.txn([mod_of(self.key) == seen], [put_op(self.key, str(new))], [get_op(self.key)])
            if result.succeeded:
                return new
            tries += 1
            if self.max_tries is not None and tries >= self.max_tries:
                raise CounterContended(f"counter {self.key!r}: lost the race {tries} times")
            failed = result.responses[0]
            found = failed.first if isinstance(failed, RangeResult) else None
            if tries > 2:  # a hot key: spread the retries out a little
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**tries)))

    async def increment(self, by: int = 1) -> int:
        return await self.add(by)

    async def decrement(self, by: int = 1) -> int:
        return await self.add(-by)

    def _value(self, kv: KeyValue | None) -> int:
        return int(kv.value) if kv is not None and kv.value else self.default


class Counter:
    """The blocking twin of `AsyncCounter`; also kazoo's spelling: `counter += 5`, `counter.value`."""

    def __init__(self, client: Client, name: KeyLike, default: int = 0, *, max_tries: int | None = None) -> None:
        self._portal = client.portal()
        self._async = AsyncCounter(self._portal.client, name, default, max_tries=max_tries)

    @property
    def key(self) -> bytes:
        return self._async.key

    @property
    def value(self) -> int:
        """The value now (read from the server)."""
        return self.get()

    def get(self) -> int:
        return on_portal(self._portal, self._async.get)

    def add(self, delta: int) -> int:
        return on_portal(self._portal, self._async.add, delta)

    def increment(self, by: int = 1) -> int:
        return self.add(by)

    def decrement(self, by: int = 1) -> int:
        return self.add(-by)

    def __iadd__(self, delta: int) -> Counter:
        self.add(delta)
        return self

    def __isub__(self, delta: int) -> Counter:
        self.add(-delta)
        return self
