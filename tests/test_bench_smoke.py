"""The benchmark harness runs end to end: etcd only, one client, one second per point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import run

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.skipif(not (shutil.which("etcd") and shutil.which("wrk")), reason="needs etcd and wrk"),
]


@pytest.mark.timeout(60)
def test_bench_harness_produces_results(tmp_path: Path) -> None:
    argv = ["--targets", "etcd", "--clients", "1", "--duration", "1", "--warmup", "0", "--keys", "500"]
    status = run.main([*argv, "--results-dir", str(tmp_path), "--no-readme"])

    (results_file,) = tmp_path.glob("*.json")
    document = json.loads(results_file.read_text())
    points = {(p["op"], p["clients"]): p for p in document["points"]}
    assert set(points) == {("put", 1), ("range", 1)}
    for point in points.values():
        assert point["target"] == "etcd"
        assert point["ops_per_s"] > 0
        assert 0 < point["p50_ms"] <= point["p99_ms"]
        assert not point["flagged"], point["problems"]
    assert document["machine"]["nproc"] >= 1
    assert status == 0
