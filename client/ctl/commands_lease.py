"""Lease commands: `lease grant/revoke/timetolive/list/keep-alive`."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from corral.client._errors import ServerError
from corral.client.ctl import rpc
from corral.client.ctl.common import (
    EXIT_BAD_ARGS,
    EXIT_BAD_CONNECTION,
    EXIT_ERROR,
    CtlError,
    emit,
    help_of,
    parse_hex_id,
)
from corral.client.ctl.textfmt import go_quote

if TYPE_CHECKING:
    from corral.client.ctl.app import Context

__all__ = ["register"]

_NOT_FOUND = "etcdserver: requested lease not found"


def register(commands: Any, flags: argparse.ArgumentParser) -> None:
    lease = commands.add_parser("lease", parents=[flags], help="lease commands (grant, revoke, ...)")
    lease.set_defaults(run=help_of(lease))
    sub = lease.add_subparsers(dest="lease_command", metavar="COMMAND", parser_class=type(lease))

    grant = sub.add_parser("grant", parents=[flags], help="create a lease", usage="corralctl lease grant <ttl>")
    grant.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    grant.set_defaults(run=run_grant)

    revoke = sub.add_parser(
        "revoke", parents=[flags], help="revoke a lease (deleting its keys)", usage="corralctl lease revoke <leaseID>"
    )
    revoke.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    revoke.set_defaults(run=run_revoke)

    ttl = sub.add_parser(
        "timetolive",
        parents=[flags],
        help="a lease's remaining time",
        usage="corralctl lease timetolive <leaseID> [options]",
    )
    ttl.add_argument("--keys", action="store_true", help="also list the keys attached to the lease")
    ttl.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    ttl.set_defaults(run=run_time_to_live)

    listing = sub.add_parser("list", parents=[flags], help="list all active leases")
    listing.set_defaults(run=run_list)

    keep = sub.add_parser(
        "keep-alive", parents=[flags], help="keep a lease alive", usage="corralctl lease keep-alive [options] <leaseID>"
    )
    keep.add_argument("--once", action="store_true", help="renew once instead of until interrupted")
    keep.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    keep.set_defaults(run=run_keep_alive)


def _lease_id(args: list[str], message: str) -> int:
    if len(args) != 1:
        raise CtlError(EXIT_BAD_ARGS, message)
    return parse_hex_id(args[0], "lease ID arg")


def run_grant(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    args = [*ns.args, *extra]
    if len(args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "lease grant command needs TTL argument")
    try:
        ttl = int(args[0], 10)
    except ValueError:
        raise CtlError(
            EXIT_BAD_ARGS, f"bad TTL (strconv.ParseInt: parsing {go_quote(args[0])}: invalid syntax)"
        ) from None
    ctx.printer.lease_grant(ctx.client().lease_grant(ttl))
    return 0


def run_revoke(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    lease_id = _lease_id([*ns.args, *extra], "lease revoke command needs 1 argument")
    try:
        header = ctx.client().lease_revoke(lease_id)
    except ServerError as exc:
        raise CtlError(EXIT_ERROR, f"failed to revoke lease ({exc.message})") from None
    ctx.printer.lease_revoke(lease_id, header)
    return 0


def run_time_to_live(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    lease_id = _lease_id([*ns.args, *extra], "lease timetolive command needs lease ID as argument")
    ctx.printer.lease_time_to_live(ctx.client().lease_time_to_live(lease_id, ns.keys), ns.keys)
    return 0


def run_list(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    ctx.printer.require("simple", "json", "fields")
    ctx.printer.lease_list(rpc.lease_list(ctx.client()))
    return 0


def run_keep_alive(ctx: Context, ns: argparse.Namespace, extra: list[str]) -> int:
    """Renew every TTL/3 and print each renewal, until the lease is gone (exit 0) or the command is stopped."""
    ctx.printer.require("simple", "json", "fields")
    lease_id = _lease_id([*ns.args, *extra], "lease keep-alive command needs lease ID as argument")
    client = ctx.client()
    while True:
        try:
            grant = client.lease_keep_alive_once(lease_id)
        except ServerError as exc:
            if ns.once or exc.message != _NOT_FOUND:
                raise CtlError(EXIT_BAD_CONNECTION, exc.message) from None
            grant = None
        if grant is None or grant.ttl <= 0:
            if ns.once:
                raise CtlError(EXIT_BAD_CONNECTION, _NOT_FOUND)
            emit(f"lease {lease_id:016x} expired or revoked.\n")
            return 0
        ctx.printer.lease_keep_alive(grant)
        if ns.once:
            return 0
        time.sleep(max(grant.ttl / 3, 0.5))
