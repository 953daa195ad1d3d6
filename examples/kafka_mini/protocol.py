"""What brokers, producer and consumer agree on: the metadata's keys, the brokers' HTTP API, a client for it.

Every broker serves, on 127.0.0.1:

    POST /produce    {"topic", "partition", "records": [str]}          -> {"base_offset", "leader_epoch"}
    POST /replicate  {"topic", "partition", "leader", "leader_epoch",
                      "base_offset", "high_watermark", "entries": [[epoch, str]]}  -> {"log_end"}
    GET  /fetch?topic=&partition=&offset=&max=                         -> {"records": [[offset, str]],
                                                                            "high_watermark", "leader_epoch"}
    GET  /health                                                       -> {"broker_id", "controller_epoch"}

An error is answered as {"error": CODE, ...}: 409 NOT_LEADER (with the broker's view of `leader_epoch`),
409 FENCED_LEADER_EPOCH (a replicate from an older leader), 409 OFFSET_OUT_OF_RANGE (with the follower's
`log_end`), 503 NOT_ENOUGH_REPLICAS (the records could not be replicated, so they are not acknowledged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from corral.client import TransportError, Unavailable
from corral.client.recipes import TopicPartition

__all__ = [
    "CONTROLLER",
    "FENCED_LEADER_EPOCH",
    "HOST",
    "NOT_ENOUGH_REPLICAS",
    "NOT_LEADER",
    "OFFSET_OUT_OF_RANGE",
    "ROOT",
    "TRANSIENT",
    "BrokerClient",
    "BrokerError",
    "FetchResult",
    "ProduceResult",
]

ROOT = "/corral/kafka/"  # the recipes' default root: brokers, topics and partition states under cluster/
CONTROLLER = ROOT + "controller"  # the controller election (its epoch is CONTROLLER + "/epoch")
HOST = "127.0.0.1"

NOT_LEADER = "NOT_LEADER"
FENCED_LEADER_EPOCH = "FENCED_LEADER_EPOCH"
OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
NOT_ENOUGH_REPLICAS = "NOT_ENOUGH_REPLICAS"

# Corral failures worth retrying: no endpoint answered, or the cluster had no leader (an election).
TRANSIENT = (TransportError, Unavailable)


class BrokerError(Exception):
    """A broker's error answer: `code` is one of the codes above, `detail` the rest of the answer."""

    def __init__(self, code: str, status: int, detail: dict[str, Any]) -> None:
        super().__init__(f"{code} (HTTP {status}): {detail}")
        self.code = code
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ProduceResult:
    """Where an acknowledged batch landed: its first offset, and the leader epoch that took it."""

    base_offset: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Records read from a leader (offset, value), and how far its log is replicated to the whole ISR."""

    records: list[tuple[int, str]]
    high_watermark: int
    leader_epoch: int


class BrokerClient:
    """Calls the brokers' produce and fetch over one pooled `httpx.AsyncClient`."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.http = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=64))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def produce(self, address: str, tp: TopicPartition, values: list[str]) -> ProduceResult:
        """Append `values` through the leader at `address`; raises `BrokerError` or `httpx.TransportError`."""
        body = {"topic": tp.topic, "partition": tp.partition, "records": values}
        data = _answer(await self.http.post(f"http://{address}/produce", json=body))
        return ProduceResult(int(data["base_offset"]), int(data["leader_epoch"]))

    async def fetch(self, address: str, tp: TopicPartition, offset: int, max_records: int = 500) -> FetchResult:
        """Up to `max_records` records from `offset`, from the leader at `address`."""
        params: dict[str, str | int] = {"topic": tp.topic, "partition": tp.partition, "offset": offset,
                                        "max": max_records}  # fmt: skip
        data = _answer(await self.http.get(f"http://{address}/fetch", params=params))
        records = [(int(offset), str(value)) for offset, value in data["records"]]
        return FetchResult(records, int(data["high_watermark"]), int(data["leader_epoch"]))


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        data: dict[str, Any] = response.json()
    except ValueError:
        data = {"error": "UNKNOWN", "body": response.text[:200]}
    if response.status_code != 200:
        raise BrokerError(str(data.get("error", "UNKNOWN")), response.status_code, data)
    return data
