"""corralctl's entry point: global flags (etcdctl's, also from `CORRALCTL_*`/`ETCDCTL_*`), dispatch, errors.

Every command is a function `run(ctx, ns, extra) -> exit code` registered on its subparser; `extra`
holds the words after a bare `--` (watch's and lock's command, or keys that start with a dash).
Failures print `Error: <message>` on stderr and exit with etcdctl's codes (`common.EXIT_*`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from corral.client._endpoints import RetryPolicy
from corral.client._errors import CorralError, ServerError
from corral.client._sync import Client
from corral.client.ctl import commands_cluster, commands_concurrency, commands_kv, commands_lease, commands_watch
from corral.client.ctl.common import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, warn
from corral.client.ctl.printers import FORMATS, Printer
from corral.client.ctl.textfmt import parse_duration

__all__ = ["Context", "main"]

_DEFAULTS = {
    "endpoints": "127.0.0.1:2379",
    "write_out": "simple",
    "hex": "false",
    "dial_timeout": "2s",
    "command_timeout": "5s",
}
_BOOL_VALUE = re.compile(r"^(--[a-z][a-z0-9-]*)=(true|false)$", re.IGNORECASE)


@dataclass
class Context:
    """What a command needs besides its own flags: endpoints, timeouts, the printer, clients.

    `command_timeout` bounds each call with its retries (`Client`'s timeout and retry deadline).
    `dial_timeout` is parsed for etcdctl's sake only: `Client` has no separate connect timeout, and
    connecting counts against the command timeout.
    """

    endpoints: list[str]
    printer: Printer
    dial_timeout: float = 2.0
    command_timeout: float = 5.0
    _clients: list[Client] = field(default_factory=list)

    def client(self, endpoints: Sequence[str] | None = None) -> Client:
        """A client for `endpoints` (the global ones by default), closed when the command ends."""
        client = Client(
            list(endpoints or self.endpoints),
            timeout=self.command_timeout,
            retry=RetryPolicy(deadline=self.command_timeout),
        )
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as etcdctl does (`Error: ...`, exit 1) instead of exiting 2."""

    def error(self, message: str) -> NoReturn:
        raise CtlError(EXIT_ERROR, message)


def _global_flags() -> argparse.ArgumentParser:
    flags = _Parser(add_help=False, allow_abbrev=False)
    group = flags.add_argument_group("global options")
    group.add_argument("--endpoints", default=argparse.SUPPRESS, help="comma-separated endpoints (127.0.0.1:2379)")
    group.add_argument(
        "-w",
        "--write-out",
        default=argparse.SUPPRESS,
        choices=FORMATS,
        help="output format: simple, json, fields or table",
    )
    group.add_argument(
        "--hex",
        action="store_const",
        const="true",
        default=argparse.SUPPRESS,
        help="print keys and values as hex-escaped bytes",
    )
    group.add_argument(
        "--dial-timeout",
        default=argparse.SUPPRESS,
        help="accepted for etcdctl scripts; connecting counts against --command-timeout",
    )
    group.add_argument("--command-timeout", default=argparse.SUPPRESS, help="timeout for a short command (5s)")
    return flags


def build_parser() -> _Parser:
    flags = _global_flags()
    parser = _Parser(
        prog="corralctl",
        description="A command line client for Corral and etcd (etcdctl v3 style).",
        parents=[flags],
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for register in (
        commands_kv.register,
        commands_watch.register,
        commands_lease.register,
        commands_cluster.register,
        commands_concurrency.register,
    ):
        register(commands, flags)
    return parser


def _setting(ns: argparse.Namespace, name: str) -> str:
    """A global flag's value: the command line, else CORRALCTL_<NAME>, else ETCDCTL_<NAME>, else the default."""
    value = getattr(ns, name, None)
    if value is not None:
        return str(value)
    for prefix in ("CORRALCTL_", "ETCDCTL_"):
        env = os.environ.get(prefix + name.upper())
        if env:
            return env
    return _DEFAULTS[name]


def _context(ns: argparse.Namespace) -> Context:
    write_out = _setting(ns, "write_out")
    if write_out not in FORMATS:
        raise CtlError(EXIT_ERROR, f"{write_out} not supported as output format")
    hex_flag = _setting(ns, "hex").lower() in ("true", "1", "t")
    try:
        dial, command = parse_duration(_setting(ns, "dial_timeout")), parse_duration(_setting(ns, "command_timeout"))
    except ValueError as exc:
        raise CtlError(EXIT_BAD_ARGS, str(exc)) from None
    endpoints = [e.strip() for e in _setting(ns, "endpoints").split(",") if e.strip()]
    if not endpoints:
        raise CtlError(EXIT_BAD_ARGS, "no endpoints given")
    return Context(endpoints, Printer(write_out, hex_flag), dial, command)


def _normalize_bools(words: list[str]) -> list[str]:
    """cobra's `--flag=true` / `--flag=false` for boolean flags: `--flag`, or nothing."""
    out = []
    for word in words:
        match = _BOOL_VALUE.match(word)
        if match is None:
            out.append(word)
        elif match.group(2).lower() == "true":
            out.append(match.group(1))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run one corralctl command; returns the exit code (the console script exits with it)."""
    words = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, extra = words[:cut], words[cut + 1 :]
    parser = build_parser()
    ctx: Context | None = None
    try:
        ns = parser.parse_args(_normalize_bools(words))
        if ns.command is None or not hasattr(ns, "run"):
            parser.print_help()
            return 0 if ns.command is None else EXIT_ERROR
        ctx = _context(ns)
        code: int = ns.run(ctx, ns, extra)
        return code
    except CtlError as exc:
        warn(f"Error: {exc.message}")
        return exc.code
    except ServerError as exc:
        warn(f"Error: {exc.message.strip()}")
        return EXIT_ERROR
    except CorralError as exc:
        warn(f"Error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    finally:
        if ctx is not None:
            ctx.close()
