"""Start real server processes (Corral or etcd) on loopback for tests and benchmarks.

Each server gets free ports, its own data directory, and is killed on exit. Startup waits
for `/health` with a bounded deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A running server: its client URL, data directory and process handle."""

    kind: str
    url: str
    data_dir: Path
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self, timeout: float = 20.0) -> None:
        self.spawn()
        self.wait_healthy(timeout)

    def spawn(self) -> None:
        """Start the process without waiting for it (cluster members wait for each other)."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, cwd=REPO_ROOT
        )
        log.close()

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = httpx.get(self.url + "/health", timeout=1.0)
                if r.status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.kind} not healthy after {timeout}s ({last}):\n{self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def restart(self, timeout: float = 20.0) -> None:
        self.kill()
        self.start(timeout)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def corral_process(
    data_dir: Path, port: int | None = None, extra: list[str] | None = None, name: str = "n1",
    peer_urls: bool = True,
) -> ServerProcess:
    """A Corral member on loopback; `peer_urls=False` keeps the default peer URLs (as `make run` does)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        sys.executable, "-m", "corral",
        "--name", name,
        "--data-dir", str(data_dir),
        "--listen-client-urls", url,
        "--advertise-client-urls", url,
        *(["--listen-peer-urls", f"http://127.0.0.1:{free_port()}"] if peer_urls else []),
        *(extra or []),
    ]
    return ServerProcess("corral", url, data_dir, args, data_dir.parent / f"{data_dir.name}.log")


def etcd_binary() -> str | None:
    return shutil.which("etcd")


def etcd_process(data_dir: Path, port: int | None = None, extra: list[str] | None = None) -> ServerProcess:
    binary = etcd_binary()
    if binary is None:
        raise RuntimeError("etcd is not installed; run `make deps` (scripts/install-deps)")
    port = port or free_port()
    peer = free_port()
    url = f"http://127.0.0.1:{port}"
    peer_url = f"http://127.0.0.1:{peer}"
    args = [
        binary,
        "--name", "ref",
        "--data-dir", str(data_dir),
        "--listen-client-urls", url,
        "--advertise-client-urls", url,
        "--listen-peer-urls", peer_url,
        "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"ref={peer_url}",
        "--log-level", "error",
        *(extra or []),
    ]
    return ServerProcess("etcd", url, data_dir, args, data_dir.parent / f"{data_dir.name}.log")


@contextmanager
def running(server: ServerProcess, timeout: float = 20.0) -> Iterator[ServerProcess]:
    server.start(timeout)
    try:
        yield server
    finally:
        server.kill()


def _cluster(
    kind: str, command: list[str], base_dir: Path, size: int, extra: list[str]
) -> list[ServerProcess]:
    """`size` members of one cluster on loopback (not started), each with etcd's flags after `command`."""
    names = [f"n{i + 1}" for i in range(size)]
    client_urls = {name: f"http://127.0.0.1:{free_port()}" for name in names}
    peer_urls = {name: f"http://127.0.0.1:{free_port()}" for name in names}
    initial = ",".join(f"{name}={url}" for name, url in peer_urls.items())
    members = []
    for name in names:
        args = [
            *command,
            "--name", name,
            "--data-dir", str(base_dir / name),
            "--listen-client-urls", client_urls[name],
            "--advertise-client-urls", client_urls[name],
            "--listen-peer-urls", peer_urls[name],
            "--initial-advertise-peer-urls", peer_urls[name],
            "--initial-cluster", initial,
            "--initial-cluster-token", f"{kind}-test",
            "--initial-cluster-state", "new",
            *extra,
        ]  # fmt: skip
        members.append(ServerProcess(kind, client_urls[name], base_dir / name, args, base_dir / f"{name}.log"))
    return members


def corral_cluster(base_dir: Path, size: int = 3, extra: list[str] | None = None) -> list[ServerProcess]:
    """`size` Corral members on loopback that form one Raft cluster (not started)."""
    return _cluster("corral", [sys.executable, "-m", "corral"], base_dir, size, extra or [])


def joining_member(existing: ServerProcess, name: str) -> ServerProcess:
    """A new member (not started) for the cluster `existing` belongs to, started the way etcd's docs
    say to start one that `member add` announced: `--initial-cluster-state existing` and an initial
    cluster listing every member and itself. Its peer URL is `peer_url(member)`."""
    flags = dict(zip(existing.args, existing.args[1:], strict=False))  # each flag -> the word after it
    client_url, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    data_dir = existing.data_dir.parent / name
    command = existing.args[: existing.args.index("--name")]
    args = [
        *command,
        "--name", name,
        "--data-dir", str(data_dir),
        "--listen-client-urls", client_url,
        "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"{flags['--initial-cluster']},{name}={peer}",
        "--initial-cluster-token", flags["--initial-cluster-token"],
        "--initial-cluster-state", "existing",
        *existing.args[existing.args.index("--initial-cluster-state") + 2 :],  # the cluster's extra flags
    ]  # fmt: skip
    return ServerProcess(existing.kind, client_url, data_dir, args, data_dir.parent / f"{name}.log")


def peer_url(member: ServerProcess) -> str:
    return member.args[member.args.index("--initial-advertise-peer-urls") + 1]


def etcd_cluster(base_dir: Path, size: int = 3, extra: list[str] | None = None) -> list[ServerProcess]:
    """`size` etcd members on loopback that form one cluster (not started), like `corral_cluster`."""
    binary = etcd_binary()
    if binary is None:
        raise RuntimeError("etcd is not installed; run `make deps` (scripts/install-deps)")
    return _cluster("etcd", [binary], base_dir, size, ["--log-level", "error", *(extra or [])])


def member_status(member: ServerProcess, timeout: float = 2.0) -> dict[str, object] | None:
    """The member's `POST /v3/maintenance/status` answer, or None if it does not answer 200."""
    try:
        response = httpx.post(member.url + "/v3/maintenance/status", json={}, timeout=timeout)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def cluster_leader(members: list[ServerProcess], timeout: float = 15.0) -> tuple[ServerProcess, str]:
    """The member every member agrees leads, and its member ID, once all of them answer and agree.

    Works for Corral and etcd alike: both report the leader's ID as `leader` and their own as
    `header.member_id` (uint64s as JSON strings).
    """
    deadline = time.monotonic() + timeout
    reports: list[dict[str, object] | None] = []
    while time.monotonic() < deadline:
        reports = [member_status(m) for m in members]
        if all(r is not None for r in reports):
            leaders = {str(r.get("leader", "0")) for r in reports if r is not None}
            if len(leaders) == 1 and leaders != {"0"}:
                (leader_id,) = leaders
                for member, report in zip(members, reports, strict=True):
                    header = report.get("header", {}) if report is not None else {}
                    if isinstance(header, dict) and str(header.get("member_id")) == leader_id:
                        return member, leader_id
        time.sleep(0.1)
    raise RuntimeError(f"no agreed leader among {len(members)} members within {timeout}s: {reports}")
