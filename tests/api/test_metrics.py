"""`/metrics` (Prometheus text, etcd's names), `/livez` and `/readyz`."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_http import Ns, put

ETCD_NAMES = {
    "etcd_server_has_leader", "etcd_server_is_leader", "etcd_server_leader_changes_seen",
    "etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total", "etcd_server_proposals_pending",
    "etcd_server_proposals_failed", "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds", "etcd_mvcc_db_total_size_in_bytes", "etcd_debugging_mvcc_keys_total",
    "etcd_debugging_mvcc_watcher_total", "etcd_server_slow_apply",
}  # fmt: skip
# A cluster adds etcd_network_peer_round_trip_time_seconds (see tests/e2e/test_membership.py).


def scrape(client: httpx.Client) -> dict[str, dict[str, float]]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples.setdefault(family.name, {})[sample.name + ("{" + labels + "}" if labels else "")] = sample.value
    return samples


def test_metrics_use_etcds_names_and_move_with_the_store(client: httpx.Client, ns: Ns) -> None:
    before = scrape(client)
    assert ETCD_NAMES <= set(before), ETCD_NAMES - set(before)
    assert before["etcd_server_has_leader"]["etcd_server_has_leader"] == 1.0
    assert before["etcd_server_is_leader"]["etcd_server_is_leader"] == 1.0
    put(client, ns("new-key"))
    after = scrape(client)
    keys = "etcd_debugging_mvcc_keys_total"
    assert after[keys][keys] == before[keys][keys] + 1
    fsyncs = after["etcd_disk_wal_fsync_duration_seconds"]["etcd_disk_wal_fsync_duration_seconds_count"]
    assert fsyncs > before["etcd_disk_wal_fsync_duration_seconds"]["etcd_disk_wal_fsync_duration_seconds_count"]
    applied = "etcd_server_proposals_applied_total"
    assert after[applied][applied] > before[applied][applied]
    assert "process_resident_memory_bytes" in {s for family in after.values() for s in family}


def test_liveness_and_readiness(client: httpx.Client) -> None:
    for path in ("/livez", "/readyz"):
        response = client.get(path)
        assert (response.status_code, response.text) == (200, "ok\n")
