"""Linearizable reads for the Raft driver: ReadIndex rounds shared by every read waiting, and waiters
for the applied index to reach a read's index."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterable

from .log import LogError
from .raft import ProposalDropped, ReadState


class ReadRounds:
    """Reads batched into ReadIndex rounds: all reads waiting when a round starts share it, and one
    round is in flight at a time. A round's answer is the index the reads must wait to be applied."""

    def __init__(self) -> None:
        self._waiting: list[asyncio.Future[int]] = []
        self._in_flight: dict[bytes, list[asyncio.Future[int]]] = {}
        self._started = 0.0

    def add(self) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        return future

    @property
    def can_start(self) -> bool:
        return bool(self._waiting) and not self._in_flight

    def start(self, context: bytes, request: Callable[[bytes], None], now: float, no_leader: LogError) -> None:
        """Start a round for the reads waiting; `request` asks the Raft core for a read index."""
        readers, self._waiting = self._waiting, []
        try:
            request(context)
        except ProposalDropped:
            _fail(readers, no_leader)
            return
        self._in_flight[context] = readers
        self._started = now

    def retry(self, now: float, after: float) -> bool:
        """A round can be lost (its request went to a leader that just lost office): once `after`
        seconds pass without an answer, its reads go back in line for a new round (as etcd retries)."""
        if not self._in_flight or now - self._started <= after:
            return False
        self.requeue()
        return True

    def requeue(self) -> None:
        """Put the reads of unanswered rounds back in line (the leader changed: ask the new one)."""
        for readers in self._in_flight.values():
            self._waiting.extend(future for future in readers if not future.done())
        self._in_flight.clear()

    def answer(self, read_states: Iterable[ReadState]) -> None:
        for read in read_states:
            for future in self._in_flight.pop(read.context, []):
                if not future.done():
                    future.set_result(read.index)

    def fail_all(self, error: LogError) -> None:
        _fail(self._waiting, error)
        for readers in self._in_flight.values():
            _fail(readers, error)


class AppliedWaiters:
    """Futures that resolve once the applied index reaches theirs."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def wait_for(self, index: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (index, next(self._order), future))
        return future

    def wake(self, applied: int) -> None:
        heap = self._heap
        while heap and heap[0][0] <= applied:
            future = heapq.heappop(heap)[2]
            if not future.done():
                future.set_result(None)

    def fail_all(self, error: LogError) -> None:
        _fail([future for _, _, future in self._heap], error)


def _fail(futures: Iterable[asyncio.Future[int]] | Iterable[asyncio.Future[None]], error: LogError) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)
