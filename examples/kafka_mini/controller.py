"""The controller: one broker at a time elects partition leaders, fenced by the controller epoch.

Every broker campaigns in a `AsyncControllerElection` on its own registration lease, so the controller's
election key and its broker registration vanish in the same revision when it dies. The winner (epoch E,
one more than its predecessor's) reconciles at once and again on every broker leave: each partition whose
leader is not a live broker gets the first live in-sync replica (in assignment order) as leader, the ISR
shrinks to its live members, `leader_epoch` grows by one and `controller_epoch` becomes E. Each such write is
a compare-and-swap on the partition key's mod revision nested in the controller's fenced txn, so it is lost
neither to a concurrent ISR change by a leader nor to a newer controller: a stale controller's write raises
`FencedError` and changes nothing.

Limit: a partition whose in-sync replicas are all dead is left without a leader (no unclean election), and
nothing here brings it back when one of them returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from corral.client import AsyncClient, AsyncLease, CorralError, LeaseLostError, RangeResult
from corral.client import txn as t
from corral.client.recipes import (
    NO_LEADER,
    AsyncBrokerRegistry,
    AsyncControllerElection,
    AsyncTopics,
    BrokerInfo,
    FencedError,
    KeyLost,
    PartitionRecord,
    PartitionState,
    TopicInfo,
)
from corral.client.recipes.topics import next_state

from examples.kafka_mini.protocol import CONTROLLER, TRANSIENT

__all__ = ["Controller"]

logger = logging.getLogger("kafka_mini.controller")

_RETRY_FOR = 10.0  # seconds a reconciliation keeps retrying through a Corral election
_CAS_ATTEMPTS = 16


class Controller:
    """Campaigns for controller on a broker's lease and, while controller, keeps every partition led."""

    def __init__(self, broker_id: int, client: AsyncClient, registry: AsyncBrokerRegistry, topics: AsyncTopics):
        self.broker_id = broker_id
        self.client = client
        self.registry = registry
        self.topics = topics
        self.epoch: int | None = None  # the controller epoch while this broker is controller
        self._dirty = False  # a reconciliation failed: try again

    async def serve(self, lease: AsyncLease) -> None:
        """Campaign and, once elected, lead until `lease` (the broker's registration) is lost."""
        while not lease.lost:
            election = AsyncControllerElection(self.client, CONTROLLER, lease=lease, identifier=str(self.broker_id))
            try:
                epoch = await election.campaign()
            except (LeaseLostError, KeyLost):
                return
            except CorralError as exc:
                logger.warning("campaign failed (%s): again", exc)
                await asyncio.sleep(0.25)
                continue
            try:
                await self._lead(election, epoch)
            except CorralError as exc:
                logger.warning("stopped leading (%s)", exc)
            finally:
                self.epoch = None
                with contextlib.suppress(CorralError):
                    await election.resign()

    async def _lead(self, election: AsyncControllerElection, epoch: int) -> None:
        self.epoch = epoch
        logger.info("controller with epoch %d", epoch)
        fenced = asyncio.Event()

        async def on_leave(broker: BrokerInfo) -> None:
            await self._reconcile_or_flag(election, epoch, f"broker {broker.broker_id} left", fenced)

        async with await self.registry.subscribe(on_leave=on_leave, include_existing=False):
            await self._reconcile_or_flag(election, epoch, "elected", fenced)
            while not (fenced.is_set() or election.lost.is_set()):
                lost = asyncio.create_task(election.lost.wait())
                gone = asyncio.create_task(fenced.wait())
                done, pending = await asyncio.wait({lost, gone}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if not done and self._dirty:
                    await self._reconcile_or_flag(election, epoch, "retry", fenced)
        logger.info("controller epoch %d is over (%s)", epoch, "fenced" if fenced.is_set() else "lease lost")

    async def _reconcile_or_flag(
        self, election: AsyncControllerElection, epoch: int, reason: str, fenced: asyncio.Event
    ) -> None:
        self._dirty = False
        try:
            await self.reconcile(election, epoch, reason)
        except FencedError as exc:
            logger.warning("fenced: %s", exc)
            fenced.set()
        except CorralError as exc:
            logger.warning("reconciliation (%s) failed: %s", reason, exc)
            self._dirty = True

    async def reconcile(self, election: AsyncControllerElection, epoch: int, reason: str) -> int:
        """Elect a leader for every partition led by a broker that is not live; returns how many changed.
        Retries through Corral elections for a while; raises `FencedError` once a newer controller exists."""
        deadline = time.monotonic() + _RETRY_FOR
        while True:
            try:
                changed = await self._reconcile_once(election, epoch)
                logger.info("reconciled (%s): %d partition(s) got a new leader", reason, changed)
                return changed
            except TRANSIENT:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def _reconcile_once(self, election: AsyncControllerElection, epoch: int) -> int:
        live = {broker.broker_id for broker in await self.registry.list()}
        changed = 0
        for topic in await self.topics.list_topics():
            description = await self.topics.describe(topic.name)
            for record in description.partitions:
                if record.state.leader not in live and await self._elect(election, epoch, topic, record, live):
                    changed += 1
        return changed

    async def _elect(
        self, election: AsyncControllerElection, epoch: int, topic: TopicInfo, record: PartitionRecord, live: set[int]
    ) -> bool:
        """CAS a new leader into one partition state through the fenced txn; False if nothing had to change."""
        key = self.topics.partition_key(record.topic, record.partition)
        for _ in range(_CAS_ATTEMPTS):
            state = record.state
            if state.leader in live:
                return False
            candidates = tuple(b for b in topic.replicas[record.partition] if b in state.isr and b in live)
            if not candidates and state.leader == NO_LEADER:
                return False
            leader = candidates[0] if candidates else NO_LEADER
            new = next_state(record, PartitionState(leader, candidates or state.isr, controller_epoch=epoch))
            result = await election.fenced_txn(
                [t.mod(key) == record.mod_revision], [t.put(key, new.encode())], [t.get(key)]
            )
            if result.succeeded:
                logger.info("%s-%d: leader %d -> %d, leader_epoch %d, isr %s, controller epoch %d",
                            record.topic, record.partition, state.leader, new.leader, new.leader_epoch,
                            list(new.isr), epoch)  # fmt: skip
                return True
            current = result.responses[0]
            assert isinstance(current, RangeResult)
            if current.first is None:
                return False  # the topic was deleted
            state_now = PartitionState.decode(current.first.value)
            record = PartitionRecord(record.topic, record.partition, state_now, current.first.mod_revision)
        logger.warning("%s-%d kept changing under the controller", record.topic, record.partition)
        return False
