"""Key-value commands: get, put, del, txn and compaction."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from corral.client.ctl import kvopts
from corral.client.ctl.common import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, CtlError, emit
from corral.client.ctl.textfmt import go_quote
from corral.client.ctl.txn_grammar import read_txn

if TYPE_CHECKING:
    from corral.client.ctl.app import Context

__all__ = ["register"]


def _words(args: list[str], extra: list[str]) -> list[bytes]:
    """Positional words as bytes (the shell hands over any bytes; `os.fsencode` gives them back)."""
    return [os.fsencode(word) for word in [*args, *extra]]


def register(commands: Any, flags: argparse.ArgumentParser) -> None:
    get = commands.add_parser(
        "get", parents=[flags], help="get a key or a range of keys", usage="corralctl get [options] <key> [range_end]"
    )
    kvopts.add_get_flags(get)
    get.add_argument("--consistency", default="l", help="linearizable (l) or serializable (s)")
    get.add_argument("--print-value-only", action="store_true", help="print only values (simple format)")
    get.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    get.set_defaults(run=run_get)

    put = commands.add_parser(
        "put",
        parents=[flags],
        help="put a key (the value may come from stdin)",
        usage="corralctl put [options] <key> <value> (<value> can also be given from stdin)",
    )
    kvopts.add_put_flags(put)
    put.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    put.set_defaults(run=run_put)

    delete = commands.add_parser(
        "del",
        parents=[flags],
        help="delete a key or a range of keys",
        usage="corralctl del [options] <key> [range_end]",
    )
    kvopts.add_delete_flags(delete)
    delete.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    delete.set_defaults(run=run_del)

    txn = commands.add_parser("txn", parents=[flags], help="a transaction read from stdin (see txn_grammar)")
    txn.add_argument("-i", "--interactive", action="store_true", help="prompt for each section")
    txn.set_defaults(run=run_txn)

    compaction = commands.add_parser(
        "compaction",
        parents=[flags],
        help="compact the event history",
        usage="corralctl compaction [options] <revision>",
    )
    compaction.add_argument("--physical", action="store_true", help="wait for the compaction to be applied")
    compaction.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    compaction.set_defaults(run=run_compaction)


def run_get(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    key, options = kvopts.range_options(ns, _words(ns.args, extra))
    if ns.consistency not in ("l", "s"):
        raise CtlError(EXIT_BAD_FEATURE, f"unknown consistency flag {go_quote(ns.consistency)}")
    options["serializable"] = ns.consistency == "s"
    result = ctx.client().get(key, **options)
    ctx.printer.get(result, ns.print_value_only, ns.count_only)
    return 0


def run_put(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    words = _words(ns.args, extra)
    stdin_value = sys.stdin.buffer.read() if len(words) == 1 and not ns.ignore_value else None
    key, value, options = kvopts.put_options(ns, words, stdin_value)
    ctx.printer.put(ctx.client().put(key, value, **options))
    return 0


def run_del(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    key, options = kvopts.delete_options(ns, _words(ns.args, extra))
    ctx.printer.delete(ctx.client().delete(key, **options))
    return 0


def run_txn(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    prompt = (lambda title: emit(title + "\n")) if ns.interactive else None
    request = read_txn(iter(sys.stdin.readline, ""), prompt)
    ctx.printer.txn(ctx.client().txn(request.compares, request.success, request.failure))
    return 0


def run_compaction(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    words = [*ns.args, *extra]
    if len(words) != 1:
        raise CtlError(EXIT_BAD_ARGS, "compaction command needs 1 argument")
    try:
        revision = int(words[0], 10)
    except ValueError:
        raise CtlError(EXIT_ERROR, f"strconv.ParseInt: parsing {go_quote(words[0])}: invalid syntax") from None
    ctx.client().compact(revision, ns.physical)
    emit(f"compacted revision {revision}\n")
    return 0
