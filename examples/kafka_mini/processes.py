"""The mini cluster's processes: Corral members and brokers on free 127.0.0.1 ports, each logging to a file.

    with LocalCluster(workdir) as cluster:     # every process is killed when the block ends
        cluster.start_corral(3)                # python -m corral with etcd's flags, one data dir each
        await cluster.wait_healthy(cluster.corral)
        cluster.start_broker(1, ttl=2)         # python -m examples.kafka_mini.broker

Processes are started with the running interpreter, from the repository root (so `examples` imports).
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from examples.kafka_mini.protocol import HOST

__all__ = ["REPO_ROOT", "LocalCluster", "Process", "free_port"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, be killed when the parent dies (even by SIGKILL), so an
    interrupted run leaves no member or broker behind. Elsewhere the brokers still watch their parent."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Process:
    """A child process: its name, command line, log file and base URL (a Corral client URL or a broker's)."""

    name: str
    args: list[str]
    url: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    member_id: int = 0  # a Corral member's Raft ID, once known

    def spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, preexec_fn=_die_with_parent
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye, exactly as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class LocalCluster:
    """Starts and tracks every process of the scenario, and kills them all on `kill_all()` or exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.corral: list[Process] = []
        self.brokers: dict[int, Process] = {}

    @property
    def endpoints(self) -> list[str]:
        return [member.url for member in self.corral]

    def start_corral(self, size: int = 3) -> list[Process]:
        """Spawn `size` members of one new Raft cluster (they elect a leader among themselves)."""
        names = [f"n{i + 1}" for i in range(size)]
        clients = {name: f"http://{HOST}:{free_port()}" for name in names}
        peers = {name: f"http://{HOST}:{free_port()}" for name in names}
        initial = ",".join(f"{name}={url}" for name, url in peers.items())
        for name in names:
            args = [sys.executable, "-m", "corral", "--name", name, "--data-dir", str(self.workdir / name),
                    "--listen-client-urls", clients[name], "--advertise-client-urls", clients[name],
                    "--listen-peer-urls", peers[name], "--initial-advertise-peer-urls", peers[name],
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", "kafka-mini", "--log-level", "warn"]  # fmt: skip
            member = Process(name, args, clients[name], self.workdir / f"{name}.log")
            member.spawn()
            self.corral.append(member)
        return self.corral

    def start_broker(self, broker_id: int, ttl: int) -> Process:
        port = free_port()
        args = [sys.executable, "-m", "examples.kafka_mini.broker", "--id", str(broker_id),
                "--endpoints", ",".join(self.endpoints), "--port", str(port), "--ttl", str(ttl)]  # fmt: skip
        broker = Process(f"broker-{broker_id}", args, f"http://{HOST}:{port}", self.workdir / f"broker-{broker_id}.log")
        broker.spawn()
        self.brokers[broker_id] = broker
        return broker

    async def wait_healthy(self, processes: list[Process], timeout: float = 30.0) -> None:
        """Until each process answers GET /health with 200; raises with its log tail if it exits or times out."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as http:
            for process in processes:
                while True:
                    if not process.alive:
                        raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
                    try:
                        if (await http.get(process.url + "/health")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{process.name} not healthy after {timeout} s:\n{process.log_tail()}")
                    await asyncio.sleep(0.05)

    def kill_all(self) -> None:
        for process in [*self.brokers.values(), *self.corral]:
            process.kill()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.kill_all()
