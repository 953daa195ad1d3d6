"""`watch`: print events as they come, optionally running a command per event (etcdctl's exec mode).

    corralctl watch [--prefix] [--rev N] [--prev-kv] <key> [range_end] [-- command args...]
    corralctl watch -i          # read `watch [options] <key> [range_end] [-- command]` lines from stdin

The command sees ETCD_WATCH_REVISION, ETCD_WATCH_KEY, ETCD_WATCH_EVENT_TYPE and ETCD_WATCH_VALUE (Go-quoted
as etcdctl sets them) and the same values as CORRAL_WATCH_*. A watch the server cancels (its start
revision was compacted) ends the command with exit code 5; in interactive mode only that watch ends.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, NoReturn

from corral.client._errors import CompactedError, WatchCanceled
from corral.client._models import Event
from corral.client._sync import Client
from corral.client.ctl.common import EXIT_BAD_ARGS, EXIT_INTERRUPTED, EXIT_INVALID_INPUT, CtlError, warn
from corral.client.ctl.textfmt import go_quote
from corral.client.ctl.txn_grammar import split_words
from corral.client.watch import WatchOptions

if TYPE_CHECKING:
    from corral.client.ctl.app import Context

__all__ = ["register"]


def _add_watch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", action="store_true", help="watch a prefix")
    parser.add_argument("--rev", type=int, default=0, help="revision to start watching from")
    parser.add_argument("--prev-kv", action="store_true", help="get the previous key-value pair of each event")
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)


def register(commands: Any, flags: argparse.ArgumentParser) -> None:
    watch = commands.add_parser(
        "watch",
        parents=[flags],
        help="watch a key, range or prefix",
        usage="corralctl watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
    )
    watch.add_argument("-i", "--interactive", action="store_true", help="read watch commands from stdin")
    _add_watch_flags(watch)
    watch.set_defaults(run=run_watch)


def _options(ns: argparse.Namespace) -> tuple[bytes, WatchOptions]:
    words = [os.fsencode(word) for word in ns.args]
    if not 1 <= len(words) <= 2:
        raise CtlError(EXIT_BAD_ARGS, "bad number of arguments")
    if len(words) == 2 and ns.prefix:
        raise CtlError(EXIT_BAD_ARGS, "`range_end` and `--prefix` are mutually exclusive")
    options: WatchOptions = {"prefix": ns.prefix, "prev_kv": ns.prev_kv}
    if ns.rev:
        options["start_revision"] = ns.rev
    if len(words) == 2:
        options["range_end"] = words[1]
    return words[0], options


def run_watch(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    if ns.interactive:
        _interactive(ctx)
    key, options = _options(ns)
    try:
        _follow(ctx, ctx.client(), key, options, extra, threading.Lock())
    except (CompactedError, WatchCanceled) as exc:
        warn(f"watch was canceled ({_reason(exc)})")
        raise CtlError(EXIT_INTERRUPTED, "watch is canceled by the server") from None
    return 0


def _follow(
    ctx: Context, client: Client, key: bytes, options: WatchOptions, command: list[str], output: threading.Lock
) -> None:
    """Print every response of one watch (and run `command` per event) until the server cancels it."""
    with client.watch(key, **options) as watch:
        for response in watch.responses():
            if not response.events:
                continue  # a progress notice
            with output:
                ctx.printer.watch(response)
                for event in response.events if command else ():
                    _exec(command, event)


def _reason(exc: CompactedError | WatchCanceled) -> str:
    return exc.message if isinstance(exc, CompactedError) else exc.reason


def _exec(command: list[str], event: Event) -> None:
    """Run `command` for one event with etcdctl's ETCD_WATCH_* variables (and CORRAL_WATCH_* twins)."""
    values = {
        "REVISION": str(event.revision),
        "KEY": go_quote(event.key),
        "EVENT_TYPE": go_quote(event.type.value),
        "VALUE": go_quote(event.value),
    }
    env = dict(os.environ)
    for name, value in values.items():
        env[f"ETCD_WATCH_{name}"] = env[f"CORRAL_WATCH_{name}"] = value
    sys.stdout.flush()
    try:
        subprocess.run(command, env=env, check=False)
    except OSError as exc:
        warn(f"command {command[0]!r} failed: {exc}")


class _LineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _interactive(ctx: Context) -> NoReturn:
    """One watch per `watch ...` line of stdin, all printing as events come; the end of stdin ends it all."""
    parser = _LineParser(prog="watch", add_help=False, allow_abbrev=False)
    _add_watch_flags(parser)
    client, output, stopping = ctx.client(), threading.Lock(), threading.Event()
    for raw in iter(sys.stdin.readline, ""):
        line = raw.strip()
        words = [w.decode(errors="surrogateescape") for w in split_words(line)]
        command: list[str] = []
        if "--" in words:
            words, command = words[: words.index("--")], words[words.index("--") + 1 :]
        if not words or words[0] != "watch":
            warn(f"Invalid command {line} (only support watch)")
            continue
        try:
            key, options = _options(parser.parse_args(words[1:]))
        except (ValueError, CtlError) as exc:
            reason = "command type or key is not provided" if isinstance(exc, CtlError) else str(exc)
            warn(f"Invalid command {line} ({reason})")
            continue
        watch_args = (ctx, client, key, options, command, output, stopping)
        threading.Thread(target=_watch_in_background, args=watch_args, daemon=True).start()
    stopping.set()  # the client closes under the watches now: their errors are no news
    raise CtlError(EXIT_INVALID_INPUT, "Error reading watch request line: EOF")


def _watch_in_background(
    ctx: Context,
    client: Client,
    key: bytes,
    options: WatchOptions,
    command: list[str],
    output: threading.Lock,
    stopping: threading.Event,
) -> None:
    try:
        _follow(ctx, client, key, options, command, output)
    except (CompactedError, WatchCanceled) as exc:
        warn(f"watch was canceled ({_reason(exc)})")
    except Exception as exc:  # a thread's last word: report it unless we are shutting down
        if not stopping.is_set():
            warn(f"watch failed ({exc})")
