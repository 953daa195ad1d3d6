"""The scenario: a mini Kafka cluster on Corral loses its controller broker and its Corral leader at once.

    python -m examples.kafka_mini [--warmup 2] [--keep DIR]

`run_scenario` starts three Corral members and three brokers, creates two topics of six partitions (one
with three replicas, one with two), and runs a producer (a task per partition) and a consumer group member.
After a warm-up it kills -9 the controller broker and the Corral leader at the same moment, measures how long
each step of the recovery took (see `results.STEPS`), lets traffic run a little longer, then reads every
partition back from its current leader and the consumer group's whole offset history from Corral. Everything
it measures and checks goes into a `Results`, which the test asserts on and `main` prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from corral.client import AsyncClient, RetryPolicy
from corral.client.recipes import (
    AsyncBrokerRegistry,
    AsyncControllerElection,
    AsyncOffsetStore,
    AsyncPartitionRouter,
    AsyncTopics,
    BrokerInfo,
    CommittedOffset,
    NoLeaderError,
    PartitionState,
    TopicPartition,
)

from examples.kafka_mini.consumer import GroupConsumer
from examples.kafka_mini.processes import LocalCluster, Process
from examples.kafka_mini.producer import ProduceFailed, Producer
from examples.kafka_mini.protocol import CONTROLLER, ROOT, TRANSIENT, BrokerClient, BrokerError
from examples.kafka_mini.results import Results

__all__ = ["Settings", "main", "run_scenario"]

T = TypeVar("T")
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Settings:
    """The scenario's knobs."""

    brokers: int = 3
    partitions: int = 6
    topics: tuple[tuple[str, int], ...] = (("orders", 3), ("payments", 2))  # (name, replication factor)
    broker_ttl: int = 2  # seconds: how long a dead broker stays registered
    produce_interval: float = 0.05  # between two records of one partition
    warmup: float = 2.0  # seconds of traffic before the kill
    after: float = 1.0  # seconds of traffic once every rerouted partition is acknowledged again
    recovery_timeout: float = 30.0
    group: str = "mini-group"


def assignment(brokers: int, partitions: int, replication: int) -> dict[int, list[int]]:
    """Replicas spread round-robin over brokers 1..N, preferred leader first (as Kafka's default)."""
    return {p: [(p + i) % brokers + 1 for i in range(replication)] for p in range(partitions)}


async def run_scenario(
    cluster: LocalCluster, results: Results, settings: Settings = Settings(), say: Say = print
) -> Results:
    """Run the whole scenario on `cluster` (the caller kills its processes afterwards), filling `results`."""
    cluster.start_corral(3)
    await cluster.wait_healthy(cluster.corral)
    scenario = _Scenario(cluster, results, settings, say)
    try:
        await scenario.run()
    finally:
        await scenario.aclose()
    return results


class _Scenario:
    """One run: the clients, the recipes, the producer and the consumer, and the steps in order."""

    def __init__(self, cluster: LocalCluster, results: Results, settings: Settings, say: Say) -> None:
        self.begin = time.monotonic()
        self.cluster, self.results, self.settings, self.say = cluster, results, settings, say
        self.client = AsyncClient(cluster.endpoints, timeout=2.0, retry=RetryPolicy(deadline=5.0))
        fast = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, deadline=1.0)
        self.probe = AsyncClient(cluster.endpoints, timeout=1.0, retry=fast)  # for the recovery probes
        self.registry = AsyncBrokerRegistry(self.client, ROOT)
        self.controller = AsyncControllerElection(self.client, CONTROLLER)  # an observer: it never campaigns
        self.topics = AsyncTopics(self.client, ROOT)
        self.router = AsyncPartitionRouter(self.client, ROOT)
        self.brokers = BrokerClient()
        self.producer = Producer(self.router, self.brokers)
        self.partitions = [TopicPartition(name, p) for name, _ in settings.topics for p in range(settings.partitions)]
        self.consumer = GroupConsumer(self.client, self.router, self.brokers, settings.group, self.partitions)
        self.killed_at = 0.0

    def log(self, message: str) -> None:
        self.say(f"[{time.monotonic() - self.begin:5.1f} s] {message}")

    async def aclose(self) -> None:
        await self.router.close()
        await self.brokers.aclose()
        await self.probe.aclose()
        await self.client.aclose()

    async def run(self) -> None:
        settings, results = self.settings, self.results
        leader = await _until(lambda: _corral_leader(self.probe, self.cluster.corral), 20, "a Corral leader")
        self.log(f"Corral: {len(self.cluster.corral)} members, leader {leader.name}")
        for broker_id in range(1, settings.brokers + 1):
            self.cluster.start_broker(broker_id, settings.broker_ttl)
        await self.cluster.wait_healthy(list(self.cluster.brokers.values()))
        await _until(lambda: self._registered(settings.brokers), 20, "every broker registered")
        await _until(self._controller_elected, 20, "a controller")
        self.log(f"brokers {sorted(self.cluster.brokers)} registered, a controller elected")
        for name, replication in settings.topics:
            await self.topics.create_topic(name, replica_assignment=assignment(settings.brokers, settings.partitions,
                                                                                  replication))  # fmt: skip
        self.log("topics: " + ", ".join(f"{n} ({settings.partitions} partitions x {r} replicas)"
                                        for n, r in settings.topics))  # fmt: skip
        await self.router.start()
        await self.consumer.join()
        await self.traffic()
        results.acked_after = len(self.producer.acks) - results.acked_before
        results.commits_after = sum(1 for commit in self.consumer.commits if commit.at > self.killed_at)
        results.produce_retries = self.producer.retries
        results.produce_failures = [str(failure) for failure in self.producer.failures]
        results.commit_errors = list(self.consumer.commit_errors)
        await self.read_back()
        self.log(f"read every partition back from its leader: {len(results.lost)} acknowledged record(s) missing")
        await self.offset_history()
        results.total_seconds = time.monotonic() - self.begin

    async def traffic(self) -> None:
        """Produce and consume; kill; time the recovery; go on a little; stop producing; drain the consumer."""
        stop_producing, stop_consuming = asyncio.Event(), asyncio.Event()
        producing = [asyncio.create_task(self.produce(tp, stop_producing)) for tp in self.partitions]
        consuming = asyncio.create_task(self.consumer.run(stop_consuming))
        try:
            await asyncio.sleep(self.settings.warmup)
            await _until(self._warm, 20, "traffic on every partition")
            await self.kill()
            await self.recover()
            self.log("recovered: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.results.timings.items()))
            await asyncio.sleep(self.settings.after)
            stop_producing.set()
            await asyncio.gather(*producing)
            ends: dict[TopicPartition, int] = {}
            for ack in self.producer.acks:
                ends[ack.tp] = max(ends.get(ack.tp, 0), ack.offset + 1)
            stop_consuming.set()
            await consuming
            await self.consumer.drain(ends, timeout=20)  # alone now: one poller per partition at a time
        finally:
            stop_producing.set()
            stop_consuming.set()
            for task in [*producing, consuming]:
                task.cancel()
            await asyncio.gather(*producing, consuming, return_exceptions=True)

    async def produce(self, tp: TopicPartition, stop: asyncio.Event) -> None:
        """One partition's records, numbered, one at a time (each retried until acknowledged or failed)."""
        seq = 0
        while not stop.is_set():
            with contextlib.suppress(ProduceFailed):
                await self.producer.send(tp, f"{tp}:{seq}")
            seq += 1
            await asyncio.sleep(self.settings.produce_interval)

    async def kill(self) -> None:
        """Note the state before, then SIGKILL the controller broker and the Corral leader together."""
        results = self.results
        holder = await self.controller.controller()
        assert holder is not None, "no controller"
        results.killed_broker = int(holder.value)
        results.controller_epoch_before = await self.controller.current_epoch()
        results.states_before = await _states(self.topics)
        committed = await AsyncOffsetStore(self.client, ROOT).fetch_all(self.settings.group)
        results.offsets_before = {tp: c.offset for tp, c in committed.items()}
        leader = await _until(lambda: _corral_leader(self.probe, self.cluster.corral), 10, "a Corral leader")
        results.killed_corral = leader.name
        results.acked_before = len(self.producer.acks)
        results.commits_before = len(self.consumer.commits)
        victims = [self.cluster.brokers[results.killed_broker], leader]
        self.killed_at = time.monotonic()
        for victim in victims:
            assert victim.proc is not None
            os.kill(victim.proc.pid, signal.SIGKILL)
        for victim in victims:
            victim.kill()  # reaps it
        self.log(f"KILLED broker {results.killed_broker} (controller, epoch {results.controller_epoch_before}, leader "
                 f"of {len(results.moved)} partitions) and Corral member {leader.name} (Raft leader)")  # fmt: skip

    async def recover(self) -> None:
        """Time each recovery step from the kill, concurrently; `TimeoutError` if one never happens."""
        results, dead, killed_at = self.results, self.results.killed_broker, self.killed_at
        left: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        def on_leave(broker: BrokerInfo) -> None:
            if broker.broker_id == dead and not left.done():
                left.set_result(time.monotonic())

        async def step(name: str, condition: Callable[[], Awaitable[object]]) -> None:
            await _until(condition, self.settings.recovery_timeout, name, interval=0.02)
            results.timings.setdefault(name, time.monotonic() - killed_at)

        async def corral_leader() -> bool:
            leader = await _corral_leader(self.probe, [m for m in self.cluster.corral if m.alive])
            results.new_corral_leader = leader.name if leader else ""
            return leader is not None

        async def broker_left() -> bool:
            results.timings["broker_left"] = await left - killed_at
            return True

        async def new_controller() -> bool:
            epoch = await self.controller.current_epoch()
            holder = await self.controller.controller()
            if epoch <= results.controller_epoch_before or holder is None:
                return False
            results.controller_epoch_after, results.new_controller = epoch, int(holder.value)
            return True

        async def partitions_led() -> bool:
            for tp in self.partitions:  # the router's watch tells first: no polling
                await self.router.wait_for(tp.topic, tp.partition, lambda r: r.broker.broker_id != dead, timeout=30)
            results.timings["partitions_led"] = time.monotonic() - killed_at
            results.live_after = {b.broker_id for b in await self.registry.list()} - {dead}
            results.states_after = await _states(self.topics)
            return True

        async def producer_rerouted() -> bool:
            for ack in self.producer.acks:
                if ack.at > killed_at and ack.tp in results.moved:
                    results.first_ack_after_kill.setdefault(ack.tp, ack.at - killed_at)
            if not set(results.moved) <= set(results.first_ack_after_kill):
                return False
            results.timings["producer_rerouted"] = max(results.first_ack_after_kill.values())
            return True

        async def consumer_committed() -> bool:
            after = [commit.at for commit in self.consumer.commits if commit.at > killed_at]
            if after:
                results.timings["consumer_committed"] = min(after) - killed_at
            return bool(after)

        steps = {"corral_leader": corral_leader, "broker_left": broker_left, "controller": new_controller,
                 "partitions_led": partitions_led, "producer_rerouted": producer_rerouted,
                 "consumer_committed": consumer_committed}  # fmt: skip
        async with await self.registry.subscribe(on_leave=on_leave, include_existing=False):
            async with asyncio.timeout(self.settings.recovery_timeout):
                await asyncio.gather(*(step(name, condition) for name, condition in steps.items()))

    async def read_back(self) -> None:
        """Read every partition from its current leader: each acknowledged record must be there."""
        stored: dict[TopicPartition, list[str]] = {}
        for tp in self.partitions:
            stored[tp] = await self.read_partition(tp)
        found = {value for values in stored.values() for value in values}
        acked = [ack.value for ack in self.producer.acks]
        self.results.stored_twice = sum(len(values) - len(set(values)) for values in stored.values())
        self.results.lost = sorted(value for value in acked if value not in found)
        consumed = {value for records in self.consumer.consumed.values() for _, value in records}
        self.results.unconsumed = sorted(value for value in acked if value not in consumed)

    async def read_partition(self, tp: TopicPartition) -> list[str]:
        values: list[str] = []
        async with asyncio.timeout(15):
            while True:
                try:
                    route = self.router.route(tp.topic, tp.partition)
                    batch = await self.brokers.fetch(route.address, tp, len(values), 1000)
                except (BrokerError, httpx.TransportError, NoLeaderError) as exc:
                    self.log(f"reading {tp} back: {exc}; again")
                    await asyncio.sleep(0.1)
                    continue
                values += [value for _, value in batch.records]
                if len(values) >= batch.high_watermark:
                    return values

    async def offset_history(self) -> None:
        """The group's committed offsets now, and every value each offset key ever had (Corral's history)."""
        store = AsyncOffsetStore(self.client, ROOT)
        self.results.offsets_after = {tp: c.offset for tp, c in (await store.fetch_all(self.settings.group)).items()}
        prefix = store.group_prefix(self.settings.group) + "offsets/"
        last = max(commit.revision for commit in self.consumer.commits)
        history: dict[TopicPartition, list[int]] = {}
        async with asyncio.timeout(10), self.client.watch(prefix, prefix=True, start_revision=1) as watch:
            async for response in watch.responses():
                for event in response.events:
                    topic, _, partition = event.key.decode()[len(prefix) :].rpartition("/")
                    offset = CommittedOffset.decode(event.kv).offset if event.kv.value else -1  # -1: deleted
                    history.setdefault(TopicPartition(topic, int(partition)), []).append(offset)
                if response.events and response.events[-1].revision >= last:
                    break
        self.results.offset_history = history

    async def _registered(self, expected: int) -> bool:
        return len(await self.registry.list()) == expected

    async def _controller_elected(self) -> bool:
        return await self.controller.current_epoch() > 0 and await self.controller.controller() is not None

    async def _warm(self) -> bool:
        acked = {ack.tp for ack in self.producer.acks}
        return acked >= set(self.partitions) and bool(self.consumer.commits)


async def _until(condition: Callable[[], Awaitable[T | None]], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy (Corral's transient failures count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(*TRANSIENT):
            value = await condition()
            if value:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        await asyncio.sleep(interval)


async def _corral_leader(client: AsyncClient, members: list[Process]) -> Process | None:
    """The member the live members name as leader (learning each member's ID on the way), or None."""
    named: set[int] = set()

    async def ask(member: Process) -> None:
        with contextlib.suppress(*TRANSIENT):
            status = await client.status(member.url)
            member.member_id = status.header.member_id
            named.add(status.leader)

    await asyncio.gather(*(ask(member) for member in members))
    return next((m for m in members if m.member_id in named and m.alive), None)


async def _states(topics: AsyncTopics) -> dict[TopicPartition, PartitionState]:
    states: dict[TopicPartition, PartitionState] = {}
    for topic in await topics.list_topics():
        for record in (await topics.describe(topic.name)).partitions:
            states[TopicPartition(record.topic, record.partition)] = record.state
    return states


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.kafka_mini", description="Kafka-style failover on Corral")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of traffic before the kill")
    parser.add_argument("--keep", type=Path, help="keep the data and logs in this directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(name)s %(levelname)s %(message)s")
    settings = Settings(warmup=args.warmup)
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kafka-mini-")))
        cluster = stack.enter_context(LocalCluster(workdir))
        results = Results()
        try:
            asyncio.run(run_scenario(cluster, results, settings))
        except (TimeoutError, RuntimeError) as exc:
            print(f"the scenario did not complete: {exc!r} (logs in {workdir})", file=sys.stderr)
        print()
        print(results.report())
    sys.exit(1 if results.problems() else 0)
