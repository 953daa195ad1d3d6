"""The producer: routes each record to its partition's leader through a watched `AsyncPartitionRouter`.

    producer = Producer(router, brokers)
    ack = await producer.send(TopicPartition("orders", 0), "order-1")   # Ack: offset, leader, epoch, time

A record is acknowledged by the leader only once every in-sync replica has it (see broker.py). When the
leader answers NOT_LEADER, cannot be reached, or no live leader is known, the producer refreshes the router,
waits (bounded) for the route to change, and sends again until `deadline`, so from its point of view no
record is lost: it either gets an `Ack` or a `ProduceFailed` naming the record. A retry after a lost answer
can store a record twice (at-least-once, as Kafka without idempotent producers).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import httpx
from corral.client import CorralError
from corral.client.recipes import AsyncPartitionRouter, NoLeaderError, Route, TopicPartition

from examples.kafka_mini.protocol import BrokerClient, BrokerError

__all__ = ["Ack", "ProduceFailed", "Producer"]


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledged record: where it landed, who took it, when (time.monotonic()) and after how many tries."""

    tp: TopicPartition
    value: str
    offset: int
    leader: int
    leader_epoch: int
    at: float
    attempts: int


class ProduceFailed(Exception):
    def __init__(self, tp: TopicPartition, value: str, last: BaseException | None) -> None:
        super().__init__(f"{tp}: {value!r} not acknowledged before the deadline (last error: {last!r})")
        self.tp = tp
        self.value = value


@dataclass
class Producer:
    """Sends records one at a time per caller; keeps every `Ack` and every failure for the report."""

    router: AsyncPartitionRouter
    brokers: BrokerClient
    deadline: float = 30.0  # seconds a record is retried before `ProduceFailed`
    acks: list[Ack] = field(default_factory=list)
    failures: list[ProduceFailed] = field(default_factory=list)
    retries: int = 0

    async def send(self, tp: TopicPartition, value: str) -> Ack:
        give_up = time.monotonic() + self.deadline
        last: BaseException | None = None
        attempt = 0
        while time.monotonic() < give_up:
            attempt += 1
            route: Route | None = None
            try:
                route = self.router.route(tp.topic, tp.partition)
                result = await self.brokers.produce(route.address, tp, [value])
            except NoLeaderError as exc:
                last = exc
            except (BrokerError, httpx.TransportError) as exc:
                last = exc
            else:
                ack = Ack(tp, value, result.base_offset, route.broker.broker_id, result.leader_epoch, time.monotonic(),
                          attempt)  # fmt: skip
                self.acks.append(ack)
                return ack
            self.retries += 1
            await self._reroute(tp, route, min(0.05 * attempt, 0.5))
        failure = ProduceFailed(tp, value, last)
        self.failures.append(failure)
        raise failure

    async def _reroute(self, tp: TopicPartition, failed: Route | None, wait: float) -> None:
        """Refresh the metadata, then wait up to `wait` seconds for a route other than the one that failed.
        (The refresh is bounded too: while Corral elects a leader the router's watch catches up on its own.)"""
        with contextlib.suppress(CorralError, TimeoutError):
            async with asyncio.timeout(max(wait, 0.25)):
                await self.router.refresh()

        def moved(route: Route) -> bool:
            return failed is None or (route.broker.broker_id, route.leader_epoch) != (
                failed.broker.broker_id, failed.leader_epoch)  # fmt: skip

        with contextlib.suppress(TimeoutError):
            await self.router.wait_for(tp.topic, tp.partition, moved, timeout=wait)
