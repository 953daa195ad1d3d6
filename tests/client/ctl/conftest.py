"""Helpers for the corralctl tests: run it in-process (fast) or as a process (watch, elect, lock, exec).

The servers come from `tests/client/conftest.py` (`server` runs a test against Corral and etcd).
"""

from __future__ import annotations

import io
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest
from corral.client.ctl import main

CTL = [sys.executable, "-m", "corral.client.ctl"]


class Run(NamedTuple):
    """An exit code with what was written on stdout and stderr (compares equal to a plain tuple)."""

    code: int
    out: str
    err: str


Ctl = Callable[..., Run]


@pytest.fixture(autouse=True)
def _no_ctl_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("ETCDCTL_", "CORRALCTL_")):
            monkeypatch.delenv(name)


@pytest.fixture
def ctl(capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch) -> Ctl:
    """`ctl(*args, stdin=b"")`: corralctl's `main` in this process, its exit code and output.

    Output is decoded as `run_process` decodes a process's (keys and values may be any bytes).
    """

    def run(*args: str, stdin: bytes = b"") -> Run:
        capsysbinary.readouterr()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main(list(args))
        out, err = capsysbinary.readouterr()
        return Run(code, out.decode(errors="replace"), err.decode(errors="replace"))

    return run


def run_process(args: list[str], stdin: bytes = b"", timeout: float = 20.0, env: dict[str, str] | None = None) -> Run:
    proc = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout, env=env)
    return Run(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))


def etcdctl_binary() -> str | None:
    return shutil.which("etcdctl")


class Process:
    """A long-running command whose output lines are read with a deadline (watch, elect, lock)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, stdin: bool = False) -> None:
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def lines(self, count: int, timeout: float = 10.0) -> list[str]:
        """The next `count` lines; fails the test if they do not come within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while len(got) < count:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"only {got!r} after {timeout} s; stderr: {self.stderr_now()}") from None
            if line is None:
                raise AssertionError(f"exited ({self.proc.poll()}) after {got!r}; stderr: {self.stderr_now()}")
            got.append(line)
        return got

    def send(self, text: str) -> None:
        """Write to the process's stdin (started with `stdin=True`)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def no_more_lines(self, wait: float = 0.3) -> bool:
        time.sleep(wait)
        return self._lines.empty()

    def stderr_now(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")

    def stop(self, sig: int | None = None) -> int:
        """Signal the process (SIGTERM by default) and wait for it; returns its exit code."""
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


@pytest.fixture
def processes() -> Iterator[Callable[..., Process]]:
    """Start `Process`es that are killed when the test ends, whatever happens."""
    started: list[Process] = []

    def start(args: list[str], env: dict[str, str] | None = None, stdin: bool = False) -> Process:
        process = Process(args, env, stdin)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(10)
        for stream in (process.proc.stdin, process.proc.stdout, process.proc.stderr):
            if stream is not None:
                stream.close()
