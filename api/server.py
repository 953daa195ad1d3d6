"""The composition root of one member: state machine, log and identity, wired together."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from corral import __version__
from corral.consensus.log import ReplicatedLog
from corral.consensus.membership import Member, cluster_id, derive_id, member_id
from corral.consensus.raft_driver import SNAPSHOT_CATCH_UP_ENTRIES, RaftNode, RaftSettings
from corral.consensus.single_node import DEFAULT_SNAPSHOT_COUNT, SingleNodeLog

if TYPE_CHECKING:
    from .tracing import Tracing

__all__ = [
    "DEFAULT_SNAPSHOT_COUNT",
    "DEFAULT_MAX_TXN_OPS",
    "SNAPSHOT_CATCH_UP_ENTRIES",
    "CorralServer",
    "ServerConfig",
]
from corral.store.state_machine import KVStateMachine
from corral.store.validation import DEFAULT_MAX_TXN_OPS

ETCD_API_VERSION = "3.4.23"  # the etcd release whose gateway behaviour Corral reproduces
ETCD_CLUSTER_VERSION = "3.4.0"
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
GRPC_OVERHEAD_BYTES = 512 * 1024
TRACING_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether OpenTelemetry's standard variables ask for traces: an OTLP endpoint is set, and neither
    `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` turns them off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in TRACING_ENDPOINT_VARIABLES)


@dataclass(frozen=True)
class ServerConfig:
    name: str = "default"
    data_dir: Path = Path("default.etcd")
    listen_client_urls: tuple[str, ...] = ("http://127.0.0.1:2379",)
    advertise_client_urls: tuple[str, ...] = ("http://127.0.0.1:2379",)
    listen_peer_urls: tuple[str, ...] = ("http://127.0.0.1:2380",)
    initial_advertise_peer_urls: tuple[str, ...] = ("http://127.0.0.1:2380",)
    initial_cluster: dict[str, tuple[str, ...]] = field(default_factory=dict)
    initial_cluster_state: str = "new"
    initial_cluster_token: str = "etcd-cluster"
    snapshot_count: int = DEFAULT_SNAPSHOT_COUNT
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    heartbeat_interval_ms: int = 100
    fault_injection: bool = False
    snapshot_catch_up_entries: int = SNAPSHOT_CATCH_UP_ENTRIES
    election_timeout_ms: int = 1000
    watch_progress_notify_interval: float = 600.0  # seconds (etcd's default: 10 minutes)

    def cluster(self) -> dict[str, tuple[str, ...]]:
        return self.initial_cluster or {self.name: self.initial_advertise_peer_urls}


class Service(Protocol):
    """Work a member runs beside its log (lease expiry): started once the log is, stopped before it."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class CorralServer:
    """One member: owns the store's state machine and the log that feeds it."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        cluster = config.cluster()
        token = config.initial_cluster_token
        members = [Member(member_id(urls, token), name, tuple(urls)) for name, urls in cluster.items()]
        ids = {m.name: m.id for m in members}
        self.member_id = ids.get(config.name) or derive_id(config.name, token)
        self.cluster_id = cluster_id(ids.values(), token)
        self.state = KVStateMachine()
        self.log: ReplicatedLog
        # None when tracing is off: then OpenTelemetry is not even imported (see api/tracing.py).
        self.tracing: Tracing | None = None
        if tracing_requested():
            from .tracing import Tracing

            self.tracing = Tracing.from_env(self.member_id, config.name, lambda: getattr(self, "log", None))
        hooks = self.tracing.hooks if self.tracing is not None else None
        if len(cluster) > 1:
            bootstrap = config.initial_cluster_state != "existing"
            settings = RaftSettings(
                member_id=self.member_id,
                initial_members=tuple(members),
                cluster_token=token,
                cluster_id=self.cluster_id if bootstrap else 0,  # a joiner learns the id from the log
                bootstrap=bootstrap,
                client_urls=config.advertise_client_urls,
                listen_peer_url=config.listen_peer_urls[0],
                snapshot_count=config.snapshot_count,
                tick_seconds=config.heartbeat_interval_ms / 1000,
                election_ticks=max(2, config.election_timeout_ms // config.heartbeat_interval_ms),
                snapshot_catch_up_entries=config.snapshot_catch_up_entries,
            )
            self.log = RaftNode(config.data_dir, self.state, settings, trace_hooks=hooks)
        else:
            # One member needs no agreement: a WAL with group commit is the whole log.
            me = Member(self.member_id, config.name, config.initial_advertise_peer_urls, config.advertise_client_urls)
            self.log = SingleNodeLog(
                config.data_dir, self.state, self.member_id, config.snapshot_count, member=me,
                cluster_id=self.cluster_id, trace_hooks=hooks,
            )  # fmt: skip
        self._cluster_id = 0
        self._cluster_id_text = "0"
        self._services: list[Service] = []
        self._started = False
        self._member_id_text = str(self.member_id)

    async def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        await self.log.start()
        self._started = True
        for service in self._services:
            service.start()

    def add_service(self, service: Service) -> None:
        self._services.append(service)
        if self._started:
            service.start()

    async def stop(self) -> None:
        for service in reversed(self._services):
            await service.stop()
        await self.log.close()
        if self.tracing is not None:
            self.tracing.shutdown()  # flush the spans still queued

    def header(self, revision: int) -> dict[str, Any]:
        if self._cluster_id != self.log.cluster_id:  # a joining member learns it from the log
            self._cluster_id = self.log.cluster_id
            self._cluster_id_text = str(self._cluster_id)
        term = self.log.term
        if self.tracing is not None:
            self.tracing.annotate(revision, term)  # the request's span gets what its response reports
        return {
            "cluster_id": self._cluster_id_text,
            "member_id": self._member_id_text,
            "revision": str(revision),
            "raft_term": str(term),
        }

    def version(self) -> dict[str, str]:
        return {"etcdserver": ETCD_API_VERSION, "etcdcluster": ETCD_CLUSTER_VERSION, "corral": __version__}
