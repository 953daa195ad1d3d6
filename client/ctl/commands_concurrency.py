"""`elect` and `lock`, on the server's election and lock routes, each bound to a lease kept alive here.

Both hold on until interrupted (SIGINT or SIGTERM), then give the election or lock up and revoke the
lease, so nothing is left behind; `lock <name> <command>` holds the lock only while the command runs.
If the lease is lost meanwhile (no keep-alive got through), they fail with `session expired`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson
from corral.client._errors import CorralError, server_error
from corral.client._models import RangeResult
from corral.client.ctl import rpc
from corral.client.ctl.common import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, emit

if TYPE_CHECKING:
    from corral.client.ctl.app import Context

__all__ = ["register"]

ELECTION_SESSION_TTL = 60  # seconds, etcdctl's session default


def register(commands: Any, flags: argparse.ArgumentParser) -> None:
    elect = commands.add_parser(
        "elect",
        parents=[flags],
        help="observe or take part in a leader election",
        usage="corralctl elect <election-name> [proposal]",
    )
    elect.add_argument("-l", "--listen", action="store_true", help="observation mode")
    elect.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    elect.set_defaults(run=run_elect)

    lock = commands.add_parser(
        "lock",
        parents=[flags],
        help="acquire a named lock",
        usage="corralctl lock <lockname> [exec-command arg1 arg2 ...]",
    )
    lock.add_argument("--ttl", type=int, default=10, help="TTL of the lease holding the lock (seconds)")
    lock.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    lock.set_defaults(run=run_lock)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM interrupts like SIGINT (KeyboardInterrupt in the main thread) while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_lock(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    words = [*ns.args, *extra]
    if not words:
        raise CtlError(EXIT_BAD_ARGS, "lock takes a lock name argument and an optional command to execute")
    name, command = os.fsencode(words[0]), words[1:]
    client = ctx.client()
    with _interruptible():
        lease = client.lease(ns.ttl)
        key: bytes | None = None
        try:
            locked = rpc.lock(client, name, lease.id)
            key = locked.key
            if command:
                return _run_holding(command, locked)
            ctx.printer.get(client.get(key))
            lease.wait_lost()
            raise CtlError(EXIT_ERROR, "session expired")
        except KeyboardInterrupt:
            return 0
        finally:
            if key is not None:
                with contextlib.suppress(CorralError, KeyboardInterrupt):
                    rpc.unlock(client, key)
            with contextlib.suppress(KeyboardInterrupt):
                lease.revoke()


def _run_holding(command: list[str], locked: rpc.Locked) -> int:
    """Run `command` with ETCD_LOCK_KEY/ETCD_LOCK_REV (and CORRAL_* twins) set; its failure is ours."""
    env = dict(os.environ)
    for prefix in ("ETCD", "CORRAL"):
        env[f"{prefix}_LOCK_KEY"] = locked.key.decode(errors="replace")
        env[f"{prefix}_LOCK_REV"] = str(locked.header.revision)
    emit(b"")
    try:
        code = subprocess.run(command, env=env, check=False).returncode
    except OSError as exc:
        raise CtlError(EXIT_ERROR, f"exec: {command[0]!r}: {exc.strerror or exc}") from None
    if code != 0:
        raise CtlError(EXIT_ERROR, f"exit status {code}" if code > 0 else f"signal: {signal.Signals(-code).name}")
    return 0


def run_elect(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    words = [*ns.args, *extra]
    if not 1 <= len(words) <= 2:
        raise CtlError(EXIT_BAD_ARGS, "elect takes one election name argument and an optional proposal argument")
    if ns.listen and len(words) == 2:
        raise CtlError(EXIT_BAD_ARGS, "proposal given but -l is set")
    if not ns.listen and len(words) == 1:
        raise CtlError(EXIT_BAD_ARGS, "no proposal argument but -l not set")
    name = os.fsencode(words[0])
    client = ctx.client()
    if ns.listen:
        return _observe(ctx, name)
    with _interruptible():
        lease = client.lease(ELECTION_SESSION_TTL)
        leader: dict[str, Any] | None = None
        try:
            leader = rpc.campaign(client, name, lease.id, os.fsencode(words[1]))
            ctx.printer.get(client.get(base64.b64decode(leader.get("key") or "")))
            lease.wait_lost()
            raise CtlError(EXIT_ERROR, "session expired")
        except KeyboardInterrupt:
            return 0
        finally:
            if leader is not None:
                with contextlib.suppress(CorralError, KeyboardInterrupt):
                    rpc.resign(client, leader)
            with contextlib.suppress(KeyboardInterrupt):
                lease.revoke()


def _observe(ctx: Context, name: bytes) -> int:
    """Print the election's leader each time it changes (the current one first), until interrupted."""
    response = rpc.observe(ctx.client(), name)
    try:
        for line in response.iter_lines():
            if not line:
                continue
            data = orjson.loads(line)
            if "result" not in data:
                raise server_error(data, 200)
            leader = rpc.ElectionLeader.decode(data["result"])
            ctx.printer.get(RangeResult(leader.header, [leader.kv], count=1))
    finally:
        response.close()
    raise CtlError(EXIT_ERROR, "the server closed the observe stream")
