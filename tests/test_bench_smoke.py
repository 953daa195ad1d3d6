"""The benchmark harness runs end to end: etcd only, one client, one second per point. (Cluster mode is not
run here, it is too slow for the suite; only its README handling is checked.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import run

needs_etcd_and_wrk = pytest.mark.skipif(not (shutil.which("etcd") and shutil.which("wrk")), reason="needs etcd and wrk")


@pytest.mark.etcd
@needs_etcd_and_wrk
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


def _between(text: str, start: str, end: str) -> str:
    return text[text.index(start) + len(start) : text.index(end)]


def test_cluster_results_go_between_their_own_markers(tmp_path: Path) -> None:
    original = run.README.read_text()
    readme = tmp_path / "README.md"
    readme.write_text(original)
    args = run.parse_args(["--cluster", "3", "--clients", "64"])
    assert args.cluster == 3 and run.parse_args([]).cluster == 1
    facts = {"date": "D", "commit": "C", "nproc": 2, "cpu": "cpu", "kernel": "k", "python": "3.11", "etcd": "e",
             "wrk": "w", "loadavg_at_start": [0.0]}  # fmt: skip
    targets: dict[str, dict[str, object]] = {"corral": {"cluster": {"size": 3, "leader": {"name": "n2"}}}}
    section = run.render_section([], facts, args, "results/x.json", {}, targets)
    assert "3-member cluster" in section and "corral n2" in section

    run.update_readme(section, readme, run.CLUSTER_START_MARKER, run.CLUSTER_END_MARKER)
    text = readme.read_text()
    assert _between(text, run.CLUSTER_START_MARKER, run.CLUSTER_END_MARKER) == "\n" + section
    assert _between(text, run.START_MARKER, run.END_MARKER) == _between(original, run.START_MARKER, run.END_MARKER)
