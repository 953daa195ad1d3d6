"""A broker process: leads and follows partitions in memory, serves produce/replicate/fetch over HTTP.

    python -m examples.kafka_mini.broker --id 1 --endpoints http://127.0.0.1:2379,... --port 9092

It registers in the broker registry (a key on a lease with a short TTL, re-registering if the lease is
ever lost), campaigns for controller on that same lease (`controller.py`), and follows the cluster metadata
through a `AsyncPartitionRouter`. It leads a partition exactly when that watched metadata names it leader:

- produce: the records are appended to the leader's log and pushed to every other in-sync replica; they
  are acknowledged (acks=all) only once each of them has them. A follower that does not answer is first
  dropped from the ISR by a compare-and-swap of the partition state, so every replica still in the ISR, the
  controller's candidates for the next leader, holds every acknowledged record.
- replicate: a follower takes the leader's entries from a base offset unless the leader's epoch is older
  than one it has seen (FENCED_LEADER_EPOCH) or the base is past its log end (OFFSET_OUT_OF_RANGE: the
  leader resends from there).
- fetch: records below the high watermark (on every in-sync replica), from the leader only. A new leader
  first runs one replication round, so its high watermark covers everything its predecessor acknowledged.

Limit: the logs live in memory (a restarted broker comes back empty and catches up only while it is still
in an ISR), and a replica dropped from an ISR is never added back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import uvicorn
from corral.client import AsyncClient, CorralError, RetryPolicy
from corral.client.recipes import (
    AsyncBrokerRegistry,
    AsyncPartitionRouter,
    AsyncTopics,
    BrokerAlreadyRegisteredError,
    NoLeaderError,
    PartitionState,
    TopicPartition,
    UnknownPartitionError,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from examples.kafka_mini.controller import Controller
from examples.kafka_mini.partition_log import Entry, PartitionLog
from examples.kafka_mini.protocol import (
    FENCED_LEADER_EPOCH,
    HOST,
    NOT_ENOUGH_REPLICAS,
    NOT_LEADER,
    OFFSET_OUT_OF_RANGE,
    ROOT,
    TRANSIENT,
    FetchResult,
    ProduceResult,
)

__all__ = ["Broker", "main"]

logger = logging.getLogger("kafka_mini.broker")
T = TypeVar("T")

REPLICA_TIMEOUT = 3.0  # a follower slower than this is dropped from the ISR (a dead one refuses at once)
ISR_WRITE_FOR = 8.0  # how long a leader retries an ISR change through a Corral election


class NotLeader(Exception):
    def __init__(self, leader_epoch: int) -> None:
        super().__init__(f"not the leader (leader epoch {leader_epoch})")
        self.leader_epoch = leader_epoch


class Fenced(Exception):
    def __init__(self, leader_epoch: int) -> None:
        super().__init__(f"leader epoch {leader_epoch} is newer")
        self.leader_epoch = leader_epoch


class OutOfRange(Exception):
    def __init__(self, log_end: int) -> None:
        super().__init__(f"the log ends at {log_end}")
        self.log_end = log_end


class NotEnoughReplicas(Exception):
    """The records could not reach every in-sync replica, nor could the ISR be shrunk: not acknowledged."""


class Broker:
    """One broker's replicas, its view of the metadata, its registration and its controller candidacy."""

    def __init__(self, broker_id: int, port: int, client: AsyncClient, ttl: int) -> None:
        self.broker_id = broker_id
        self.port = port
        self.ttl = ttl
        self.client = client
        self.registry = AsyncBrokerRegistry(client, ROOT)
        self.topics = AsyncTopics(client, ROOT)
        self.router = AsyncPartitionRouter(client, ROOT)
        self.controller = Controller(broker_id, client, self.registry, self.topics)
        self.logs: dict[TopicPartition, PartitionLog] = {}
        self.peers = httpx.AsyncClient(timeout=REPLICA_TIMEOUT)
        self.registered = False

    def log(self, tp: TopicPartition) -> PartitionLog:
        return self.logs.setdefault(tp, PartitionLog())

    # -- leading ------------------------------------------------------------------------------------------

    async def leadership(self, tp: TopicPartition, log: PartitionLog) -> int:
        """The epoch this broker leads `tp` in per the metadata (with `log.lock` held); raises `NotLeader`.
        On a new epoch it reads the partition state once, for the ISR the router does not carry."""
        try:
            route = self.router.route(tp.topic, tp.partition)
        except (NoLeaderError, UnknownPartitionError):
            log.follow()
            raise NotLeader(log.known_epoch) from None
        log.known_epoch = max(log.known_epoch, route.leader_epoch)
        if route.broker.broker_id != self.broker_id:
            log.follow()
            raise NotLeader(route.leader_epoch)
        if log.leader_epoch != route.leader_epoch:
            state = (await self.topics.partition(tp.topic, tp.partition)).state
            if state.leader != self.broker_id:
                log.follow()
                raise NotLeader(state.leader_epoch)
            log.lead(state.leader_epoch, state.isr)
            logger.info("%s: leading at epoch %d, isr %s, log end %d", tp, state.leader_epoch, list(state.isr),
                        log.log_end)  # fmt: skip
        assert log.leader_epoch is not None
        return log.leader_epoch

    async def produce(self, tp: TopicPartition, values: list[str]) -> ProduceResult:
        log = self.log(tp)
        async with log.lock:
            epoch = await self.leadership(tp, log)
            base = log.append(epoch, values)
            await self.replicate(tp, log)
            return ProduceResult(base, epoch)

    async def fetch(self, tp: TopicPartition, offset: int, max_records: int) -> FetchResult:
        log = self.log(tp)
        async with log.lock:
            epoch = await self.leadership(tp, log)
            if log.high_watermark < log.log_end:
                with contextlib.suppress(NotEnoughReplicas):
                    await self.replicate(tp, log)  # a new leader's first round: the HW catches up
            return FetchResult(log.read(offset, max_records), log.high_watermark, epoch)

    async def replicate(self, tp: TopicPartition, log: PartitionLog) -> None:
        """Push the log to every other in-sync replica, drop the ones that fail from the ISR, move the HW."""
        followers = [b for b in log.isr if b != self.broker_id]
        outcomes = await asyncio.gather(*(self.push(tp, log, follower) for follower in followers))
        failed = tuple(f for f, ok in zip(followers, outcomes, strict=True) if not ok)
        if failed:
            await self.shrink_isr(tp, log, failed)
        log.high_watermark = log.log_end

    async def push(self, tp: TopicPartition, log: PartitionLog, follower: int) -> bool:
        """Bring one follower's log up to ours; False if it cannot be reached."""
        address = next((b.address for b in self.router.brokers() if b.broker_id == follower), None)
        if address is None:
            return False  # not registered: its lease expired
        start = min(log.follower_end.get(follower, log.high_watermark), log.log_end)
        for _ in range(4):
            body = {"topic": tp.topic, "partition": tp.partition, "leader": self.broker_id,
                    "leader_epoch": log.leader_epoch, "base_offset": start, "high_watermark": log.high_watermark,
                    "entries": [[e.epoch, e.value] for e in log.entries[start:]]}  # fmt: skip
            try:
                response = await self.peers.post(f"http://{address}/replicate", json=body)
                data = response.json()
            except (httpx.HTTPError, ValueError):
                return False
            if response.status_code == 200:
                log.follower_end[follower] = int(data["log_end"])
                return True
            if data.get("error") == OFFSET_OUT_OF_RANGE:
                start = min(int(data["log_end"]), start)
                continue
            if data.get("error") == FENCED_LEADER_EPOCH:
                log.follow()
                raise NotLeader(int(data["leader_epoch"]))
            return False
        return False

    async def shrink_isr(self, tp: TopicPartition, log: PartitionLog, failed: tuple[int, ...]) -> None:
        """CAS the failed followers out of the stored ISR, as long as this broker still leads at its epoch."""
        epoch = log.leader_epoch

        def without_failed(state: PartitionState) -> PartitionState:
            if state.leader != self.broker_id or state.leader_epoch != epoch:
                raise NotLeader(state.leader_epoch)
            return dataclasses.replace(state, isr=tuple(b for b in state.isr if b not in failed))

        deadline = time.monotonic() + ISR_WRITE_FOR
        while True:
            try:
                record = await self.topics.update_partition(tp.topic, tp.partition, without_failed)
                break
            except NotLeader:
                log.follow()
                raise
            except TRANSIENT as exc:
                if time.monotonic() > deadline:
                    raise NotEnoughReplicas(f"{tp}: could not drop {failed} from the ISR: {exc}") from exc
                await asyncio.sleep(0.1)
        logger.info("%s: dropped %s from the ISR, now %s", tp, list(failed), list(record.state.isr))
        log.isr = record.state.isr
        for follower in failed:
            log.follower_end.pop(follower, None)

    # -- following ----------------------------------------------------------------------------------------

    async def take(self, tp: TopicPartition, leader: int, epoch: int, base: int, hw: int, entries: list[Entry]) -> int:
        """A leader's replicate request; returns the new log end."""
        log = self.log(tp)
        async with log.lock:
            with contextlib.suppress(NoLeaderError, UnknownPartitionError):
                log.known_epoch = max(log.known_epoch, self.router.route(tp.topic, tp.partition).leader_epoch)
            if epoch < log.known_epoch:
                raise Fenced(log.known_epoch)
            log.known_epoch = epoch
            if log.leader_epoch is not None and leader != self.broker_id:
                logger.info("%s: broker %d leads at epoch %d: following", tp, leader, epoch)
                log.follow()
            if base > log.log_end:
                raise OutOfRange(log.log_end)
            log.replace_from(base, entries, hw)
            return log.log_end

    # -- HTTP ---------------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/produce", self._produce, methods=["POST"]),
            Route("/replicate", self._replicate, methods=["POST"]),
            Route("/fetch", self._fetch, methods=["GET"]),
            Route("/health", self._health, methods=["GET"]),
        ])  # fmt: skip

    async def _produce(self, request: Request) -> JSONResponse:
        body = await request.json()
        tp = TopicPartition(str(body["topic"]), int(body["partition"]))
        values = [str(v) for v in body["records"]]
        return await _answer(lambda: self.produce(tp, values), lambda r: {"base_offset": r.base_offset,
                                                                         "leader_epoch": r.leader_epoch})  # fmt: skip

    async def _replicate(self, request: Request) -> JSONResponse:
        body = await request.json()
        tp = TopicPartition(str(body["topic"]), int(body["partition"]))
        entries = [Entry(int(epoch), str(value)) for epoch, value in body["entries"]]
        return await _answer(
            lambda: self.take(tp, int(body["leader"]), int(body["leader_epoch"]), int(body["base_offset"]),
                              int(body["high_watermark"]), entries),
            lambda end: {"log_end": end},
        )  # fmt: skip

    async def _fetch(self, request: Request) -> JSONResponse:
        query = request.query_params
        tp = TopicPartition(query["topic"], int(query["partition"]))
        offset, max_records = int(query["offset"]), int(query.get("max", "500"))
        return await _answer(lambda: self.fetch(tp, offset, max_records), lambda r: {
            "records": r.records, "high_watermark": r.high_watermark, "leader_epoch": r.leader_epoch})  # fmt: skip

    async def _health(self, request: Request) -> JSONResponse:
        return JSONResponse({"broker_id": self.broker_id, "registered": self.registered,
                             "controller_epoch": self.controller.epoch})  # fmt: skip

    # -- life -----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve HTTP, then register and campaign; until SIGTERM/SIGINT, or until the parent process is gone."""
        while True:
            try:
                await self.router.start()
                break
            except CorralError as exc:
                logger.warning("metadata unreachable (%s): retrying", exc)
                await asyncio.sleep(0.25)
        config = uvicorn.Config(self.app(), host=HOST, port=self.port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                await serving
                raise RuntimeError(f"broker {self.broker_id}: the HTTP server did not start on port {self.port}")
            await asyncio.sleep(0.02)
        side = [asyncio.create_task(self.keep_registered()), asyncio.create_task(_exit_with_parent(server))]
        try:
            await serving
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await self.router.close()
            await self.peers.aclose()

    async def keep_registered(self) -> None:
        """Register (again after a lost lease) and stand for controller on the registration's lease."""
        while True:
            try:
                registration = await self.registry.register(self.broker_id, HOST, self.port, ttl=self.ttl)
            except BrokerAlreadyRegisteredError:
                await asyncio.sleep(0.25)  # our previous lease has not expired yet
                continue
            except CorralError as exc:
                logger.warning("could not register (%s): retrying", exc)
                await asyncio.sleep(0.25)
                continue
            self.registered = True
            logger.info("registered: broker epoch %d, lease %x", registration.info.epoch, registration.lease.id)
            try:
                await self.controller.serve(registration.lease)
            finally:
                self.registered = False
                with contextlib.suppress(CorralError):
                    await registration.deregister()
            logger.warning("registration lost: registering again")


async def _answer(call: Callable[[], Awaitable[T]], encode: Callable[[T], object]) -> JSONResponse:
    """Run a handler's call and turn its outcome, or its failure, into the API's JSON answer."""
    try:
        return JSONResponse(encode(await call()))
    except NotLeader as exc:
        return JSONResponse({"error": NOT_LEADER, "leader_epoch": exc.leader_epoch}, 409)
    except Fenced as exc:
        return JSONResponse({"error": FENCED_LEADER_EPOCH, "leader_epoch": exc.leader_epoch}, 409)
    except OutOfRange as exc:
        return JSONResponse({"error": OFFSET_OUT_OF_RANGE, "log_end": exc.log_end}, 409)
    except NotEnoughReplicas as exc:
        return JSONResponse({"error": NOT_ENOUGH_REPLICAS, "message": str(exc)}, 503)
    except CorralError as exc:
        return JSONResponse({"error": "METADATA_UNAVAILABLE", "message": str(exc)}, 503)


async def _exit_with_parent(server: uvicorn.Server) -> None:
    """Stop when the process that started us is gone (a killed driver must not leave brokers behind)."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    server.should_exit = True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.kafka_mini.broker", description="A kafka_mini broker.")
    parser.add_argument("--id", type=int, required=True, help="the broker id")
    parser.add_argument("--endpoints", required=True, help="Corral client URLs, comma-separated")
    parser.add_argument("--port", type=int, required=True, help="the HTTP port to serve on 127.0.0.1")
    parser.add_argument("--ttl", type=int, default=2, help="the registration lease's TTL in seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s broker-{args.id} %(name)s %(levelname)s %(message)s")  # fmt: skip
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def run() -> None:
        async with AsyncClient(args.endpoints.split(","), timeout=2.0, retry=RetryPolicy(deadline=5.0)) as client:
            await Broker(args.id, args.port, client, args.ttl).run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
