"""`/metrics` in Prometheus' text format, under etcd's metric names where the meaning is the same (so
etcd's dashboards and alerts work), and `corral_*` for the rest.

Everything is read at scrape time from the log's status and stats, the store and the watch hub: the
request path does no metric bookkeeping of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

from corral.consensus.stats import Histogram
from corral.watch.hub import WatchHub
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from .server import CorralServer


class ServerCollector:
    """A Prometheus collector over one member."""

    def __init__(self, server: CorralServer, hub: WatchHub) -> None:
        self._server = server
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        server = self._server
        status, stats = server.log.status(), server.log.stats
        store = server.state.store
        gauges = {
            "etcd_server_has_leader": ("Whether a leader exists: 1 is existence, 0 is not.", bool(status.leader_id)),
            "etcd_server_is_leader": ("Whether this member is the leader.", status.leader_id == status.member_id),
            "etcd_server_proposals_committed_total": ("The total number of consensus proposals committed.",
                                                      status.commit_index),
            "etcd_server_proposals_applied_total": ("The total number of consensus proposals applied.",
                                                    status.applied_index),
            "etcd_server_proposals_pending": ("The current number of pending proposals to commit.",
                                              status.pending_proposals),
            "etcd_mvcc_db_total_size_in_bytes": ("Total size of the WAL and snapshot files in bytes.",
                                                 status.storage_bytes),
            "etcd_debugging_mvcc_keys_total": ("Total number of keys.", store.key_count()),
            "etcd_debugging_mvcc_watcher_total": ("Total number of watchers.", len(self._hub)),
            "corral_store_revision": ("The store's current revision.", store.revision),
            "corral_store_compact_revision": ("The revision of the last compaction.", max(store.compact_revision, 0)),
            "corral_raft_term": ("The current Raft term.", status.term),
            "corral_leases_total": ("Leases granted and not yet revoked or expired.", len(server.state.leases.ids())),
            "corral_members_total": ("Members of the cluster, learners included.", len(server.log.members())),
        }  # fmt: skip
        for name, (documentation, value) in gauges.items():
            yield GaugeMetricFamily(name, documentation, value=float(value))
        counters = {
            "etcd_server_leader_changes_seen": ("The number of leader changes seen.", stats.leader_changes),
            "etcd_server_proposals_failed": ("The total number of failed proposals seen.", stats.proposals_failed),
            "etcd_server_slow_apply": ("The total number of slow apply requests (over 100 ms).", stats.slow_applies),
        }
        for name, (documentation, value) in counters.items():
            yield CounterMetricFamily(name, documentation, value=float(value))
        yield _histogram("etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.",
                         stats.wal_fsync)  # fmt: skip
        yield _histogram("etcd_disk_backend_commit_duration_seconds",
                         "The latency distributions of writing a snapshot (Corral's backend commit).",
                         stats.snapshot_save)  # fmt: skip
        round_trips = HistogramMetricFamily(
            "etcd_network_peer_round_trip_time_seconds", "Round-Trip-Time histogram between peers", labels=["To"]
        )
        for peer, histogram in sorted(stats.peer_round_trip.items()):
            round_trips.add_metric([format(peer, "x")], _buckets(histogram), histogram.total)
        yield round_trips


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [("+Inf" if bound == float("inf") else repr(bound), float(count)) for bound, count in histogram.cumulative()]


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, documentation, buckets=_buckets(histogram), sum_value=histogram.total)


class Metrics:
    """The registry one member's `/metrics` serves: its own collector and the process's."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, server: CorralServer, hub: WatchHub) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServerCollector(server, hub))  # type: ignore[arg-type]
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
